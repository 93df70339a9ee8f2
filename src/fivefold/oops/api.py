"""The public entry points: parse a log in memory, stream one of any size, analyze in full.

``parse`` is pure text work. ``analyze`` adds the two heavier steps: the ``Code:`` bytes
disassembled with capstone (:mod:`fivefold.oops.code`) and, given a vmlinux, every frame of
the log symbolized in one batch (:mod:`fivefold.oops.symbolize`). Both are imported only
when used, so that ``import fivefold.oops`` stays light.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from fivefold.oops import details
from fivefold.oops.crash import Crash
from fivefold.oops.lines import normalize
from fivefold.oops.parse import parse_text
from fivefold.oops.report import match_oops

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
        details.fill(crash, raw.lines, norm.text[raw.start :])
        crash.start = norm.origin(crash.start)
        crash.end = max(crash.start, norm.origin(crash.end, end=True))
        crashes.append(crash)
    return crashes


#: Substrings that together cover every header of the table (checked in a test): one fast
#: ``bytes.find`` each over a chunk rules out crash-free text at memory speed. They are few
#: and long on purpose; a false hit only costs one line check.
STREAM_NEEDLES: tuple[bytes, ...] = (
    b"BUG",
    b"anic",
    b"fault",
    b"rror:",
    b"WARNING:",
    b"INFO:",
    b"UBSAN:",
    b"nable to handle kernel",
    b"segment: ",
    b"int3:",
    b"opcode:",
    b"Booting the kernel.",
    b"unregister_netdevice",
    b"VFS: Close: file",
    b"VFS: Busy inodes",
    b"Alignment trap:",
    b"SYZFA",
    b"hard LOCKUP",
)


class _Automaton:
    """First needle at or after a position, from one SIMD Aho-Corasick pass per 256 KB slice.

    The automaton returns every match of what it is given; the matches of the last slice are
    kept, so that a log full of ordinary needle lines ("page fault", "Error:") costs one pass
    per slice, not one per line.
    """

    STEP = 256 * 1024

    def __init__(self, automaton: Any) -> None:
        self.automaton = automaton
        self.longest = max(len(n) for n in STREAM_NEEDLES)
        self.buffer: bytes | None = None
        self.hits: list[int] = []
        self.lo = self.hi = 0

    def __call__(self, buffer: bytes, start: int) -> int:
        if buffer is not self.buffer or start < self.lo:
            self.buffer, self.hits, self.lo, self.hi = buffer, [], start, start
        while True:
            index = bisect.bisect_left(self.hits, start)
            if index < len(self.hits):
                return self.hits[index]
            if self.hi >= len(buffer):
                return -1
            lo = max(start, self.hi)
            view = memoryview(buffer)[lo : lo + self.STEP + self.longest]
            self.hits = sorted(lo + m[1] for m in self.automaton.find_matches_as_indexes(view))
            self.lo, self.hi = lo, lo + self.STEP


@cache
def _automaton() -> Any:
    """The compiled Aho-Corasick automaton over the needles, or None without ahocorasick-rs."""
    try:
        import ahocorasick_rs
    except ImportError:
        return None
    return ahocorasick_rs.BytesAhoCorasick(list(STREAM_NEEDLES))


def _needle_search() -> Callable[[bytes, int], int] | None:
    """A fresh per-stream finder (it caches the matches of its last slice)."""
    automaton = _automaton()
    return None if automaton is None else _Automaton(automaton)


def _first_needle(buffer: bytes, start: int, fast: Callable[[bytes, int], int] | None) -> int:
    """The line start of the first possible crash header at or after ``start``, or -1."""
    if fast is not None:
        best = fast(buffer, start)
    else:
        best = -1
        for needle in STREAM_NEEDLES:
            pos = buffer.find(needle, start, best + len(needle) if best != -1 else len(buffer))
            if pos != -1 and (best == -1 or pos < best):
                best = pos
    if best == -1:
        return -1
    return buffer.rfind(b"\n", 0, best) + 1


def _line_start(buffer: bytes, pos: int) -> int:
    return buffer.rfind(b"\n", 0, max(pos, 0)) + 1 if pos > 0 else 0


def parse_stream(stream: BinaryIO, *, chunk_size: int = STREAM_CHUNK) -> Iterator[Crash]:
    """Crashes of a binary log stream, in order, in memory bounded by one report.

    The stream is read in chunks. A chunk without any header needle is dropped after a few
    byte searches (the common case, and what makes scanning fast); only a tail is kept as the
    possible prefix of a report. Around a needle, the window from a little before it to one
    report's size after it is parsed as a log of its own, and offsets are shifted back.
    """
    finder = _needle_search()
    buffer = b""
    base = 0  # stream offset of buffer[0]
    scan = 0  # where in buffer the needle search resumes
    eof = False
    while True:
        while not eof and len(buffer) - scan < STREAM_REPORT + chunk_size:
            data = stream.read(chunk_size)
            if not data:
                eof = True
                break
            buffer += data
        hit = _first_needle(buffer, scan, finder)
        if hit == -1:
            if eof:
                return
            cut = _line_start(buffer, len(buffer) - STREAM_LOOKBEHIND)
            base, buffer, scan = base + cut, buffer[cut:], len(buffer) - cut - 64
            scan = max(scan, 0)
            continue
        line_end = buffer.find(b"\n", hit)
        line_end = len(buffer) if line_end == -1 else line_end
        if match_oops(buffer[hit:line_end].decode("latin-1")) is None:
            # A needle in an ordinary line ("page fault", "Error:"): one line check, no parse.
            scan = line_end + 1
            if scan >= len(buffer) and eof:
                return
            if scan > chunk_size + STREAM_LOOKBEHIND:
                cut = _line_start(buffer, scan - STREAM_LOOKBEHIND)
                base, buffer, scan = base + cut, buffer[cut:], scan - cut
            continue
        window_start = _line_start(buffer, hit - STREAM_LOOKBEHIND)
        window_end = min(len(buffer), hit + STREAM_REPORT)
        if window_end < len(buffer):
            window_end = buffer.rfind(b"\n", hit, window_end) + 1 or window_end
        crashes = [c for c in parse(buffer[window_start:window_end]) if c.start >= hit - window_start]
        truncated = window_end < len(buffer) or not eof
        if crashes and truncated and len(crashes) > 1:
            # The last report may run past the window: leave it for the next round.
            resume = window_start + crashes[-1].start
            crashes = crashes[:-1]
        elif crashes:
            resume = max(window_start + crashes[-1].end, hit + 1)
        else:
            line_end = buffer.find(b"\n", hit)
            resume = len(buffer) if line_end == -1 else line_end + 1
        for crash in crashes:
            crash.start += base + window_start
            crash.end += base + window_start
            yield crash
        if eof and resume >= len(buffer):
            return
        cut = _line_start(buffer, resume - STREAM_LOOKBEHIND)
        base, buffer, scan = base + cut, buffer[cut:], resume - cut


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
        queries = [
            FrameQuery(f.function, f.offset, f.size, f.module, f.address, f.stack != "pc") for f in frames
        ]
        for frame, chain in zip(frames, symbolizer.symbolize(queries), strict=True):
            frame.source = list(chain)
        return symbolizer.backend


def analyze(
    text: str | bytes, *, vmlinux: Path | None = None, modules: Path | None = None, name: str | None = None
) -> list[Crash]:
    """``parse`` plus disassembly of ``Code:`` and, with ``vmlinux``, symbolized frames."""
    crashes = parse(text)
    for crash in crashes:
        crash.source = name
        decode_code(crash)
    if vmlinux is not None and crashes:
        symbolize(crashes, vmlinux, modules)
    return crashes
