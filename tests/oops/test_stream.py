"""parse_stream: the same crashes as parse, at the same offsets, in bounded memory."""

from __future__ import annotations

import io
import random

import pytest

from fivefold.oops import api, parse, parse_stream
from fivefold.oops.formats import LINUX_OOPSES


def _noise(lines: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    words = [
        "usb 1-1: new device",
        "EXT4-fs (sda1): mounted filesystem",
        "audit: type=1400 apparmor",
        "IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
        "random: crng init done",
    ]
    return "".join(
        f"[{i / 100:12.6f}] {rng.choice(words)} {rng.randint(0, 99999)}\n" for i in range(lines)
    ).encode()


@pytest.mark.parametrize("chunk", [4096, 65536, 1 << 22])
def test_stream_equals_parse(sample, chunk: int) -> None:  # type: ignore[no-untyped-def]
    log = (
        _noise(3000, 1)
        + sample("mtk-arm-bug.log")
        + _noise(5000, 2)
        + sample("x86_64-kasan.log")
        + _noise(200, 3)
        + sample("arm64-null-deref.log")
    )
    whole = [(c.title, c.start, c.end) for c in parse(log)]
    streamed = [(c.title, c.start, c.end) for c in parse_stream(io.BytesIO(log), chunk_size=chunk)]
    assert len(whole) == 4
    assert streamed == whole


def test_stream_of_crash_free_log_yields_nothing() -> None:
    assert list(parse_stream(io.BytesIO(_noise(20000)), chunk_size=1 << 16)) == []
    assert list(parse_stream(io.BytesIO(b""))) == []


def test_stream_keeps_memory_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The buffer never holds much more than lookbehind + one report + one chunk."""
    monkeypatch.setattr(api, "STREAM_REPORT", 32 * 1024)
    monkeypatch.setattr(api, "STREAM_LOOKBEHIND", 8 * 1024)
    sizes: list[int] = []
    real = api.parse

    def spy(text: str | bytes) -> list:  # type: ignore[type-arg]
        sizes.append(len(text))
        return real(text)

    monkeypatch.setattr(api, "parse", spy)
    crash = (b"[ 9.0] kernel BUG at fs/x.c:1!\n[ 9.0] RIP: 0010:x_fn+0x1/0x2\n"
             b"[ 9.0] Call Trace:\n[ 9.0]  y+0x1/0x2\n")
    log = _noise(20000) + crash + _noise(20000, 5)
    found = list(parse_stream(io.BytesIO(log), chunk_size=16 * 1024))
    assert [c.title for c in found] == ["kernel BUG in x_fn"]
    assert log[found[0].start :].startswith(b"[ 9.0] kernel BUG")
    assert sizes and max(sizes) <= 8 * 1024 + 32 * 1024 + 1024


def test_needles_cover_every_header() -> None:
    for oops in LINUX_OOPSES:
        assert any(n.decode() in oops.header for n in api.STREAM_NEEDLES), oops.header


def test_ordinary_lines_with_needles_are_skipped_cheaply(sample) -> None:  # type: ignore[no-untyped-def]
    """Lines like "page fault" or "ACPI Error:" hold needles but start no report."""
    noisy = b"".join(b"[%6d.000000] ACPI Error: page fault handler %d\n" % (i, i) for i in range(30000))
    log = noisy + sample("x86_64-kasan.log") + noisy
    crashes = list(parse_stream(io.BytesIO(log), chunk_size=1 << 16))
    assert [c.title for c in crashes] == ["KASAN: slab-use-after-free Read in demo_read"]
    assert crashes[0].start == len(noisy) + sample("x86_64-kasan.log").index(b"[   41.201377]")


def test_fallback_without_aho_corasick(monkeypatch: pytest.MonkeyPatch, sample) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(api, "_needle_search", lambda: None)
    log = _noise(500) + sample("x86_64-kasan.log")
    assert [c.title for c in parse_stream(io.BytesIO(log), chunk_size=4096)] == [
        "KASAN: slab-use-after-free Read in demo_read"
    ]
