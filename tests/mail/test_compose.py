"""Composing: structure, Bcc, RFC 2231 names, header injection, Message-ID/Date, line lengths."""

from __future__ import annotations

import email
import email.policy
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold.mail import Attachment, Message, send
from fivefold.mail.addresses import AddressError, HeaderInjectionError
from fivefold.mail.htmltext import html_to_text
from fivefold.mail.message import guess_type
from fivefold.mail.server import CaptureServer

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
UNICODE_NAME = "Résumé – 履歴書 ✓.pdf"


def rich_message(tmp_path: Path) -> Message:
    log = tmp_path / "build log.txt"
    log.write_bytes(b"line one\r\nline two\n\x00binary-ish tail")
    return Message(
        sender="Zoë Ünïcode <zoe@example.org>",
        to=["Ann <ann@example.org>", "bob@example.org"],
        cc=["Carl <carl@example.org>", "ANN@example.org"],
        bcc=["hidden@example.net", "bob@example.org"],
        reply_to=["replies@example.org"],
        subject="Rapport d'été ☃ — weekly",
        html='<h1>Hi</h1><p>See <a href="https://x.org/r">the report</a></p><img src="cid:logo" alt="logo">',
        inline=[Attachment("logo.png", data=PNG, cid="logo")],
        attachments=[Attachment.from_path(log), Attachment(UNICODE_NAME, data=b"%PDF-1.4 fake"),
                     Attachment("r.json", data=b"{}", content_type="application/json")],
        headers={"X-Report-Id": "42"},
    )


def test_structure_bcc_names_and_contents_over_the_wire(tmp_path: Path, capture: CaptureServer) -> None:
    msg = rich_message(tmp_path)
    result = send(msg, server=capture.address, timeout=10)
    assert result.ok and result.refused == {}
    assert result.accepted == ["ann@example.org", "bob@example.org", "carl@example.org",
                               "hidden@example.net"]
    [raw] = capture.raw()
    [item] = capture.received()
    assert "hidden@example.net" in item.rcpt_tos  # the envelope carries the Bcc ...
    assert b"hidden@example.net" not in raw and b"bcc" not in raw.lower()  # ... no header does
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    # RFC 2231 parameters, never RFC 2047 words inside a MIME parameter or an addr-spec.
    assert b"filename*=utf-8''" in raw or b"filename*0*=utf-8''" in raw
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
        if b"filename" in line or b"name=" in line:
            assert b"=?" not in line
    assert re.search(rb"^From: =\?utf-8\?[bq]\?.*\?= <zoe@example\.org>\r$", header_block, re.M)
    assert b"\r\nMessage-ID: <" in header_block and b"@example.org>" in header_block
    assert b"\r\nDate: " in header_block

    [parsed] = capture.messages()
    assert parsed["From"].addresses[0].display_name == "Zoë Ünïcode"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.org", "bob@example.org"]
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["carl@example.org"]  # ANN@ de-duplicated
    assert parsed["Subject"] == "Rapport d'été ☃ — weekly"
    assert parsed["X-Report-Id"] == "42"
    # mixed(alternative(text, related(html, image)), attachments...)
    assert parsed.get_content_type() == "multipart/mixed"
    top = list(parsed.iter_parts())
    assert [p.get_content_type() for p in top] == ["multipart/alternative", "text/plain", "application/pdf",
                                                  "application/json"]
    alt = list(top[0].iter_parts())
    assert [p.get_content_type() for p in alt] == ["text/plain", "multipart/related"]
    related = list(alt[1].iter_parts())
    assert [p.get_content_type() for p in related] == ["text/html", "image/png"]
    assert related[1]["Content-ID"] == "<logo>" and related[1].get_content() == PNG
    assert "the report (https://x.org/r)" in alt[0].get_content()  # text generated from the HTML
    assert top[1].get_filename() == "build log.txt"
    assert top[1].get_payload(decode=True) == b"line one\r\nline two\n\x00binary-ish tail"
    assert top[2].get_filename() == UNICODE_NAME
    assert top[2].get_payload(decode=True) == b"%PDF-1.4 fake"


@pytest.mark.parametrize("field,value", [
    ("subject", "hi\r\nBcc: victim@example.org"),
    ("to", ["a@example.org\nBcc: victim@example.org"]),
    ("sender", "x@example.org\r\nX-Evil: 1"),
    ("headers", {"X-Note": "ok\nBcc: victim@example.org"}),
])
def test_header_injection_refused_before_sending(capture: CaptureServer, field: str, value: object) -> None:
    fields: dict[str, object] = {"sender": "a@example.org", "to": ["b@example.org"], "subject": "s",
                                 "text": "x"}
    fields[field] = value
    msg = Message(**fields)  # type: ignore[arg-type]
    with pytest.raises(HeaderInjectionError):
        send(msg, server=capture.address, timeout=5)
    assert capture.received() == []


def test_invalid_addresses_and_reserved_headers() -> None:
    for bad in ["not-an-address", "a@", "@b.org", "a b@c.org", "Name <a@b@>"]:
        with pytest.raises(AddressError):
            Message(sender="a@example.org", to=[bad], text="x").compose()
    with pytest.raises(AddressError, match="no recipients"):
        Message(sender="a@example.org", text="x").compose()
    with pytest.raises(Exception, match="set by Message itself"):
        Message(sender="a@example.org", to=["b@example.org"], headers={"Bcc": "c@x.org"}).compose()
    with pytest.raises(Exception, match="no such file"):
        Message(sender="a@example.org", to=["b@example.org"],
                attachments=[Attachment.from_path(Path("/nonexistent/x.bin"))]).compose()


def test_long_lines_and_text_only_and_comma_lists() -> None:
    html = "<p>" + "word " * 2000 + "</p>"
    raw = Message(sender="a@example.org", to=["b@example.org, \"Doe, J\" <j@example.org>"],
                  subject="s " * 100, html=html).to_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.display_name for a in parsed["To"].addresses] == ["", "Doe, J"]
    plain = Message(sender="a@example.org", to=["b@example.org"], text="just text").compose()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content() == "just text\n"


def test_guess_type_from_content_then_name() -> None:
    assert guess_type("noext", PNG[:64]) == "image/png"
    assert guess_type("photo.txt", b"\xff\xd8\xff\xe0") == "image/jpeg"  # the bytes win over the name
    assert guess_type("notes", "héllo".encode()) == "text/plain"
    assert guess_type("blob", b"\x00\x01\x02\xff\xfe") == "application/octet-stream"
    assert guess_type("table.csv", b"a,b\n") == "text/csv"
    assert guess_type("doc.docx", b"PK\x03\x04rest").endswith("wordprocessingml.document")


def test_html_to_text() -> None:
    text = html_to_text("<style>p{}</style><h1>T</h1><p>a&amp;b<br>c</p><ul><li>one</li><li>two</li></ul>")
    assert text == "T\n\na&b\nc\n\n* one\n* two\n"


_name_chars = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"\\/')


@settings(max_examples=40, deadline=None)
@given(filename=st.text(_name_chars, min_size=1, max_size=60).filter(lambda s: s.strip() == s and s),
       subject=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=120),
       display=st.text(string.ascii_letters + "éü☃ ,.'-", max_size=30),
       data=st.binary(max_size=300))
def test_roundtrip_property(filename: str, subject: str, display: str, data: bytes) -> None:
    msg = Message(sender=f'"{display}" <s@example.org>', to=["t@example.org"], subject=subject, text="x",
                  attachments=[Attachment(filename, data=data)])
    raw = msg.to_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject.strip() or " ".join(parsed["Subject"].split()) == " ".join(
        subject.split())
    assert parsed["From"].addresses[0].display_name == display.strip() or display.strip() == ""
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == filename
    assert attachment.get_payload(decode=True) == data
