"""The demo, plus unit tests of names, URLs, rules and Retry-After parsing."""

from __future__ import annotations

import os
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold._common.errors import UsageError
from fivefold.crawl.manifest import read_manifest
from fivefold.crawl.names import NAME_MAX_BYTES, inside, numbered, render_name, safe_name
from fivefold.crawl.politeness import retry_after
from fivefold.crawl.rules import load_rules, parse_size, rules_from_flags
from fivefold.crawl.urls import canonical


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    from fivefold.crawl.demo import demo

    outputs = demo(tmp_path / "crawl")
    assert "files stored" in outputs["stored"]
    rows = read_manifest(tmp_path / "crawl")
    assert sum(r.status == "stored" for r in rows) >= 30
    assert any(r.status == "failed" and "max-bytes" in (r.error or "") for r in rows)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=400), st.sampled_from(["", ".jpg", ".png", ".weird-ext"]))
def test_safe_name_properties(title: str, ext: str) -> None:
    name = safe_name(title, ext, fallback="fallback")
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert len(numbered(name, 99999).encode()) + len(".part") <= NAME_MAX_BYTES
    assert not any(ord(c) < 32 for c in name)
    inside(Path("/tmp/out"), name)


@pytest.mark.parametrize("title", ["CON", "con.txt", "LPT1", "..", ".", "../../etc/passwd", "a/b\\c"])
def test_reserved_and_traversal_names(title: str) -> None:
    name = safe_name(title, ".jpg", fallback="x")
    assert name.split(".")[0].upper() not in {"CON", "LPT1", ""}
    assert os.path.dirname(os.path.normpath(os.path.join("/out", name))) == "/out"


def test_inside_refuses_escapes(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    for bad in ("..", "a/b", "x" * 300):
        with pytest.raises(ValueError):
            inside(tmp_path, bad)
    (tmp_path / "evil").symlink_to("/etc/hostname")
    with pytest.raises(ValueError, match="leaves"):
        inside(tmp_path, "evil")


def test_name_template() -> None:
    values = {"index": 7, "sha256": "abcdef123", "ext": ".jpg"}
    assert render_name("{index:04d}-{sha256:.6}{ext}", values) == "0007-abcdef.jpg"
    with pytest.raises(UsageError, match="unknown field"):
        render_name("{nope}", {"title": "x"})


@pytest.mark.parametrize(("raw", "expected"), [
    ("HTTP://Example.COM:80/a/./b/../c?b=2&a=1#frag", "http://example.com/a/c?a=1&b=2"),
    ("https://example.com:443", "https://example.com/"),
    ("http://example.com/%7Euser/a%20b", "http://example.com/~user/a%20b"),
    ("javascript:alert(1)", None),
    ("mailto:x@example.com", None),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
])
def test_canonical(raw: str, expected: str | None) -> None:
    assert canonical(raw) == expected


def test_canonical_relative() -> None:
    assert canonical("../img/x.jpg#top", "http://h/a/b/page") == "http://h/a/img/x.jpg"


def test_retry_after_forms() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("0.5") == 0.5
    now = time.time()
    assert 9 <= (retry_after(formatdate(now + 10, usegmt=True), now) or 0) <= 10.01
    assert retry_after("garbage") is None
    assert retry_after(formatdate(now - 100, usegmt=True), now) == 0.0


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        'start = ["http://example.com/"]\nmax_bytes = "2MB"\ntypes = ["image/*", "video/mp4"]\n'
        'name = "{title}-{index}{ext}"\n'
        '[[page]]\nname = "index"\nmatch = "/(page/\\\\d+)?$"\nfollow = "a.detail"\nfollow_as = "detail"\n'
        '[[page]]\nname = "detail"\nmedia = ["img.photo", "a.download@href"]\ntitle = "h1"\n'
        'fields = { caption = "p.caption" }\n')
    rules = load_rules(path)
    assert rules.max_bytes == 2 << 20 and rules.start == ("http://example.com/",)
    assert rules.page_rule("http://example.com/page/2").name == "index"
    assert rules.page_rule("http://example.com/item/9", "detail").media[1].attr == "href"
    assert rules.type_allowed("video/mp4") and not rules.type_allowed("text/html")


@pytest.mark.parametrize(("text", "message"), [
    ("stat = 1\n", "unknown key 'stat'"),
    ("[[page]]\nmedia = 3\n", "expected a CSS selector"),
    ("[[page]]\nfollow_as = 'nope'\nfollow = 'a'\n", "follow_as names no page type"),
    ("max_bytes = 'huge'\n", "cannot read 'huge' as a size"),
    ("[[page]\n", "invalid TOML"),
])
def test_rules_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_rules(path)


def test_sizes_and_flags() -> None:
    assert parse_size("500KB") == 500 << 10 and parse_size("1.5 GiB") == int(1.5 * (1 << 30))
    with pytest.raises(UsageError, match="no start URL"):
        rules_from_flags([], follow=[], media=[], title=None, fields={}, paginate=None, allow=[], deny=[])


def test_repeated_429_slow_the_whole_host() -> None:
    from fivefold.crawl.politeness import PENALTY_AFTER, Host

    host = Host("h", slots=4)
    host.load_robots(None, "ua", 0.0)
    for _ in range(PENALTY_AFTER - 1):
        host.refused(100.0)
    assert host.interval() == 0.0  # a stray 429 or two changes nothing
    host.refused(100.0)
    first = host.interval()
    assert first > 0 and host.ready_at(100.0) == 100.0 + first
    host.refused(100.0)
    assert host.interval() == 2 * first
    for _ in range(10):
        host.succeeded()
    assert host.interval() == 0.0
