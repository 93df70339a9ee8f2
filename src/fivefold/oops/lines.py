"""Raw log bytes -> text the parser reads.

The parser works on text decoded as Latin-1: every byte is one character, so any input
decodes (binary garbage, invalid UTF-8) and character offsets are byte offsets into the log.
Console logs of the usual shape (``[   12.345678] msg``, optional ``[T123]``/``[C1]`` caller
ids, ``<N>`` printk levels) are read as they are. Other shapes are rewritten line by line into
that one, keeping a map back to the original byte offsets:

* MediaTek's ``[ 2.052157] <2>-(2)[1:swapper/0]msg`` (and the ``-(2)[1:swapper/0]`` markers
  it scatters inside continuation lines, and the next record glued onto a line);
* logcat kernel lines ``11-22 19:00:01.123  0  0 E kernel  : msg`` (``logcat -b kernel``);
* journalctl ``Nov 22 19:00:01 host kernel: msg`` and ``[  12.3] host kernel: msg``;
* bare ``<N>msg`` levels as read from ``/proc/kmsg``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_MTK_MARK = re.compile(r"<\d+>-\(\d+\)\[\d+:")
_MTK_PREFIX = re.compile(r"^(\[ *\d+\.\d+\]) *<\d+>(?:-\(\d+\)\[\d+:[^\]\n]*\])?")
_MTK_INNER = re.compile(r"-\(\d+\)\[\d+:[^\]\n]*\]")
# A second record glued onto a line (the console lost a newline).
_MTK_GLUED = re.compile(r"(?<=\S)(?=\[ *\d+\.\d+\] *<\d+>)")
_LOGCAT = re.compile(
    r"^(?:\d\d-\d\d |\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d+\s+(?:\d+\s+\d+\s+)?[VDIWEFA][ /]kernel\s*: ?",
)
_LOGCAT_MARK = re.compile(r"[VDIWEFA][ /]kernel\s*: ")
_JOURNAL = re.compile(
    r"^(?:(?:[A-Z][a-z]{2} [ \d]\d |\d{4}-\d\d-\d\dT)\d\d:\d\d:\d\d(?:[.,]\d+)?(?:[+-]\d\d:?\d\d)?"
    r" \S+ kernel: )",
)
_JOURNAL_MONO = re.compile(r"^(\[ *\d+\.\d+\]) \S+ kernel: ")
_JOURNAL_MARK = re.compile(r" kernel: ")
_BARE_LEVEL = re.compile(r"^<\d>(?!\[)")
MAX_LINE = 4096


@dataclass
class Text:
    """Normalised log text and the way back to byte offsets of the original."""

    text: str
    starts: list[int] | None = None  # normalised line starts, when lines were rewritten
    origins: list[int] | None = None  # the matching original byte offsets
    ends: list[int] | None = None  # and where each original line (or glued piece) ends

    def origin(self, offset: int, *, end: bool = False) -> int:
        """The byte offset in the original log of ``offset`` in :attr:`text`.

        Inside a rewritten line there is no exact counterpart: a start maps to the start of
        the original line, an ``end`` to its end.
        """
        if self.starts is None or self.origins is None or self.ends is None:
            return offset
        index = bisect.bisect_right(self.starts, offset) - 1
        if index < 0:
            return 0
        if end and offset > self.starts[index]:
            return self.ends[index]
        return self.origins[index]


def decode(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return data.decode("latin-1")


def display(text: str) -> str:
    """A Latin-1-decoded string shown as the UTF-8 it most likely was."""
    try:
        return text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text


def _rewrite_line(line: str, mtk: bool, logcat: bool, journal: bool) -> str:
    if logcat:
        line = _LOGCAT.sub("", line, count=1)
    if journal:
        line = _JOURNAL.sub("", line, count=1)
        line = _JOURNAL_MONO.sub(r"\1 ", line, count=1)
    if mtk:
        match = _MTK_PREFIX.match(line)
        if match is not None:
            line = match.group(1) + " " + line[match.end() :]
        line = _MTK_INNER.sub("", line)
    return _BARE_LEVEL.sub("", line, count=1)


def normalize(data: str | bytes) -> Text:
    """Decodes ``data`` and rewrites vendor line prefixes into plain console lines."""
    text = decode(data)
    mtk = ">-(" in text and _MTK_MARK.search(text) is not None
    logcat = "kernel" in text and _LOGCAT_MARK.search(text) is not None
    journal = _JOURNAL_MARK.search(text) is not None
    bare = text.startswith("<") or "\n<" in text
    # printk lines are at most ~1 KB; giant "lines" are binary junk, and would make the
    # format regexes (".*" on every header occurrence) quadratic. They are cut up.
    raw_lines = text.split("\n")
    long_lines = len(text) > MAX_LINE and max(map(len, raw_lines)) > MAX_LINE
    if not (mtk or logcat or journal or bare or long_lines):
        return Text(text)
    out: list[str] = []
    starts: list[int] = []
    origins: list[int] = []
    ends: list[int] = []
    size = 0
    pos = 0
    for raw in raw_lines:
        pieces = _MTK_GLUED.split(raw) if mtk else [raw]
        if long_lines:
            pieces = [p[i : i + MAX_LINE] for p in pieces for i in range(0, max(len(p), 1), MAX_LINE)]
        offset = pos
        for piece in pieces:
            rewritten = _rewrite_line(piece, mtk, logcat, journal)
            starts.append(size)
            origins.append(offset)
            ends.append(offset + len(piece))
            out.append(rewritten)
            size += len(rewritten) + 1
            offset += len(piece)
        pos += len(raw) + 1
    return Text("\n".join(out), starts, origins, ends)


def normalize_text(data: str | bytes) -> str:
    return normalize(data).text
