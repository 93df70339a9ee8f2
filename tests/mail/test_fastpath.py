"""send_many's fast path: a skeleton fill whose bytes parse back as the stdlib's would."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from dataclasses import replace
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold._common.errors import UsageError
from fivefold.mail import Attachment, Message
from fivefold.mail.addresses import HeaderInjectionError
from fivefold.mail.bulk import jobs_from_messages
from fivefold.mail.fastcompose import SkeletonCache
from fivefold.mail.templates import MergeTemplate

DATE = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
SENDER = "Zoë Ünïcode <zoe@example.org>"

SUPPORTED = [
    Message(sender="news@example.org", to=["Ann <ann@example.org>"], subject="Plain", text="Hello\nAnn"),
    Message(sender=SENDER, to=["Jürgen Straße <j@example.org>"], subject="Rapport d'été ☃ — weekly",
            text="Grüße ✓", html="<p>Grüße ✓</p>", cc=["Carl <carl@example.org>", "ANN@example.org"],
            bcc=["hidden@example.net"], reply_to=["replies@example.org"], headers={"X-Id": "42"}),
    Message(sender=SENDER, to=["\"Doe, John\" <john@example.org>"], subject="x" * 150,
            html="<h1>Only html</h1><p>" + "word " * 400 + "</p>", cc=["Carl <carl@example.org>"],
            bcc=["hidden@example.net", "other@example.net"]),
    Message(sender="news@example.org", to=["李雷 <li@example.org>"], subject="你好",
            text="line\n" * 50 + "y" * 2000, html="<p>" + "z" * 3000 + "</p>"),
]


def _parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _unbounded(data: bytes) -> bytes:
    return re.sub(rb"={15}\d+==", b"BOUNDARY", data)


def _normalised(content: object) -> object:
    return content.replace("\r\n", "\n") if isinstance(content, str) else content


def _summary(message: EmailMessage) -> dict[str, object]:
    headers = {name: str(message[name]) for name in message
               if name.lower() not in {"content-type", "content-transfer-encoding"}}
    parts = [(part.get_content_type(), _normalised(part.get_content()))
             for part in message.walk() if not part.is_multipart()]
    return {"headers": headers, "parts": parts, "type": message.get_content_type()}


@pytest.mark.parametrize("index", range(len(SUPPORTED)))
def test_fast_path_parses_back_as_the_stdlib_path(index: int) -> None:
    message = replace(SUPPORTED[index], date=DATE)
    mid = "<fixed.1@example.org>"
    fast = SkeletonCache().compose(message, mid)
    assert fast is not None
    slow = replace(message, message_id=mid).compose().as_bytes()
    assert _summary(_parsed(fast)) == _summary(_parsed(slow))
    assert b"hidden@example.net" not in fast and b"Bcc" not in fast
    assert all(len(line) <= 998 for line in fast.split(b"\r\n"))
    assert b"\n" not in fast.replace(b"\r\n", b"")
    assert fast.isascii() or message.needs_smtputf8()


def test_cache_shares_skeletons_and_fills_each_recipient() -> None:
    cache = SkeletonCache()
    first = cache.compose(replace(SUPPORTED[1], date=DATE), "<a@example.org>")
    other = replace(SUPPORTED[1], to=["Bea <bea@example.org>"], subject="Other")
    second = cache.compose(other, "<b@example.org>")
    assert first is not None and second is not None
    assert len(cache._skeletons) == 1
    parsed = _parsed(second)
    assert str(parsed["To"]) == "Bea <bea@example.org>" and parsed["Subject"] == "Other"
    assert parsed["Message-ID"] == "<b@example.org>" and parsed["Date"] is not None


@pytest.mark.parametrize("message", [
    Message(sender="n@example.org", to=["a@example.org"], text="t",
            attachments=[Attachment("a.txt", data=b"x")]),
    Message(sender="n@example.org", to=["a@example.org"], html="<img src='cid:l'>",
            inline=[Attachment("l.png", data=b"\x89PNG\r\n\x1a\n", cid="l")]),
    Message(sender="n@example.org", to=["a@example.org", "b@example.org"], text="t"),
    Message(sender="n@example.org", to=["a@example.org"], bcc=["ü@exämple.org"], text="t"),
    Message(sender="n@example.org", cc=["a@example.org"], text="t"),
])
def test_unsupported_shapes_take_the_stdlib_path(message: Message) -> None:
    message = replace(message, date=DATE)
    assert SkeletonCache().compose(message, "<m@example.org>") is None
    [job] = jobs_from_messages([message])
    data = job.build("<m@example.org>")
    assert isinstance(data, bytes)
    expected = replace(message, message_id="<m@example.org>").compose().as_bytes()
    assert _unbounded(data) == _unbounded(expected)  # byte for byte, but for the random boundaries


def test_send_many_jobs_use_the_fast_path_and_refuse_injection() -> None:
    [job] = jobs_from_messages([replace(SUPPORTED[1], date=DATE)])
    data = job.build("<j@example.org>")
    assert isinstance(data, bytes)
    assert _summary(_parsed(data)) == _summary(_parsed(
        replace(SUPPORTED[1], date=DATE, message_id="<j@example.org>").compose().as_bytes()))
    with pytest.raises(HeaderInjectionError):
        SkeletonCache().compose(replace(SUPPORTED[0], subject="Hi\r\nBcc: x@evil.example"), "<m@x>")


TEXT_TEMPLATE = "Dear {{ name }},\n\nyour number is {{ n }}.\n"
HTML_TEMPLATE = "<p>Dear <b>{{ name }}</b> &amp; {{n}}</p>\n"


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=30), n=st.text(alphabet="<>&\"'0123456789 ", max_size=10))
def test_template_fill_renders_as_jinja(name: str, n: str) -> None:
    import jinja2

    template = MergeTemplate(subject="Hi {{ name }}", text=TEXT_TEMPLATE, html=HTML_TEMPLATE)
    assert set(template._fills) == {"subject", "text", "html"}  # all three take the fast fill
    row = {"name": name, "n": n}
    plain = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    html = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True, keep_trailing_newline=True)
    assert template.render_bodies(row) == (plain.from_string(TEXT_TEMPLATE).render(row),
                                           html.from_string(HTML_TEMPLATE).render(row))


def test_templates_beyond_plain_names_render_through_jinja() -> None:
    template = MergeTemplate(subject="{{ name | upper }}", text="{% if n %}{{ n }}{% endif %}",
                             html="<i>{{ name }}</i>")
    assert set(template._fills) == {"html"}
    assert template.render_subject({"name": "ann"}) == "ANN"
    assert template.render_bodies({"name": "<a>", "n": "7"}) == ("7", "<i>&lt;a&gt;</i>")
    with pytest.raises(UsageError, match="'n' is undefined"):  # a row without the column: Jinja's error
        MergeTemplate(subject="s", text="{{ n }}").render_bodies({"name": "x"})
