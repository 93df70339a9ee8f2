"""The public entry points: parse a log in memory, stream one of any size, analyze in full.

``parse`` is pure text work. ``analyze`` adds the two heavier steps: the ``Code:`` bytes
disassembled with capstone (:mod:`fivefold.oops.code`) and, given a vmlinux, every frame of
the log symbolized in one batch (:mod:`fivefold.oops.symbolize`). Both are imported only
when used, so that ``import fivefold.oops`` stays light.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fivefold.oops import details
from fivefold.oops.crash import Crash
from fivefold.oops.lines import normalize
from fivefold.oops.parse import parse_text, table

#: How much of the log before a crash header the stream keeps (the report's prefix lines).
STREAM_LOOKBEHIND = 64 * 1024
#: How much log after a crash header the stream hands to the parser: one report's worth.
STREAM_REPORT = 4 * 1024 * 1024
STREAM_CHUNK = 4 * 1024 * 1024


def parse(text: str | bytes) -> list[Crash]:
    """Every crash in ``text``, in log order; never raises on any input."""
    norm = normalize(text)
    crashes = []
    for crash, raw in parse_text(norm.text):
        details.fill(crash, raw.lines, norm.text[raw.start:])
        crash.start = norm.origin(crash.start)
        crash.end = norm.origin(crash.end) if crash.end < len(norm.text) else len(norm.text)
        crashes.append(crash)
    return crashes


def _header_bytes() -> re.Pattern[bytes]:
    headers = sorted({o.spec.header for o in table().oopses}, key=len, reverse=True)
    return re.compile(b"|".join(re.escape(h.encode()) for h in headers))


def parse_stream(stream: BinaryIO, *, chunk_size: int = STREAM_CHUNK) -> Iterator[Crash]:
    """Crashes of a binary log stream, in order, in memory bounded by one report.

    The stream is read in chunks; a chunk without any crash header is dropped after one
    byte search (the common case, and what makes it fast). When a header shows up, the
    window from a little before it to one report's size after it is parsed as a log of its
    own; offsets are then shifted back to the stream's.
    """
    headers = _header_bytes()
    buffer = b""
    base = 0  # stream offset of buffer[0]
    eof = False
    while True:
        if not eof and len(buffer) < STREAM_LOOKBEHIND + STREAM_REPORT + chunk_size:
            data = stream.read(chunk_size)
            if data:
                buffer += data
                continue
            eof = True
        hit = headers.search(buffer, max(0, len(buffer) - len(buffer)))
        if hit is None:
            if eof:
                return
            # Keep only a tail: the prefix of a report whose header is in the next chunk.
            keep = buffer[-STREAM_LOOKBEHIND:]
            base += len(buffer) - len(keep)
            buffer = keep
            continue
        line_start = buffer.rfind(b"\n", 0, hit.start()) + 1
        window_start = max(0, line_start - STREAM_LOOKBEHIND)
        window_start = buffer.find(b"\n", window_start) + 1 if window_start else 0
        window_start = min(window_start, line_start)
        window = buffer[window_start:line_start + STREAM_REPORT]
        if not eof and len(buffer) < line_start + STREAM_REPORT:
            # The report may continue beyond the buffer: read more first.
            data = stream.read(chunk_size)
            if data:
                buffer += data
                continue
            eof = True
            continue
        crashes = [c for c in parse(window) if c.start >= line_start - window_start]
        consumed = line_start + 1
        if crashes:
            last = crashes[-1]
            complete = eof and len(window) == len(buffer) - window_start
            if not complete and len(crashes) > 1:
                # The last crash may be cut by the window's end: parse it again next round.
                crashes = crashes[:-1]
                last = crashes[-1]
            for crash in crashes:
                crash.start += base + window_start
                crash.end += base + window_start
                yield crash
            consumed = max(consumed, window_start + max(last.end - base - window_start, 0) + 1)
            consumed = window_start + (last.end - base - window_start) if last.end > base else consumed
            consumed = max(consumed, line_start + 1)
        else:
            line_end = buffer.find(b"\n", line_start)
            consumed = len(buffer) if line_end == -1 else line_end + 1
        base += consumed
        buffer = buffer[consumed:]
        if eof and not buffer:
            return


def _code_arch(crash: Crash) -> str | None:
    if crash.arch not in ("x86_64", "i386", "arm", "arm64"):
        return None
    if crash.arch == "arm" and crash.code_line is not None:
        units = [u.strip("()<>") for u in crash.code_line.split("Code:", 1)[1].split()]
        if units and all(len(u) == 4 for u in units):
            return "thumb"
    return crash.arch


def decode_code(crash: Crash) -> None:
    """Disassembles the crash's ``Code:`` line in place (quietly nothing when it does not decode)."""
    arch = _code_arch(crash)
    if crash.code_line is None or arch is None:
        return
    from fivefold.oops.code import decode_code_line

    pc = crash.registers.pc if crash.registers is not None else None
    try:
        crash.code = decode_code_line(crash.code_line.split("Code:", 1)[1], arch, pc=pc)
    except ValueError:
        crash.code = None


def symbolize(crashes: list[Crash], vmlinux: Path, modules: Path | None = None) -> str:
    """Adds source locations to every frame of ``crashes`` (one log) in one batch.

    Returns the symbolizer backend's name. Raises FivefoldError for a missing, non-ELF or
    wrong-architecture ``vmlinux``.
    """
    from fivefold.oops.symbolize import Symbolizer
    from fivefold.oops.symbolize_types import FrameQuery

    offset = next((c.context.kernel_offset for c in crashes if c.context.kernel_offset), 0) or 0
    arch = next((c.arch for c in crashes if c.arch), None)
    frames = [f for c in crashes for f in c.frames if not f.inline and (f.function or f.address)]
    with Symbolizer(vmlinux, modules, kernel_offset=offset, expected_arch=arch) as symbolizer:
        queries = [FrameQuery(f.function, f.offset, f.size, f.module, f.address, f.stack != "pc")
                   for f in frames]
        for frame, chain in zip(frames, symbolizer.symbolize(queries), strict=True):
            frame.source = list(chain)
        return symbolizer.backend


def analyze(text: str | bytes, *, vmlinux: Path | None = None, modules: Path | None = None,
            name: str | None = None) -> list[Crash]:
    """``parse`` plus disassembly of ``Code:`` and, with ``vmlinux``, symbolized frames."""
    crashes = parse(text)
    for crash in crashes:
        crash.source = name
        decode_code(crash)
    if vmlinux is not None and crashes:
        symbolize(crashes, vmlinux, modules)
    return crashes
