"""Give a cut report its title: the format that matches first, filled with the blamed frame.

syzkaller's extractDescription and extractStackFrame, table-driven: each format's stack
``parts`` are matched in turn over the report lines, frames pass the skip lists of
:mod:`fivefold.oops.rules`, and the title is normalised so that equal bugs get equal titles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from fivefold.oops import formats as F
from fivefold.oops import rules as R
from fivefold.oops.report import CORRUPTED_NO_FRAMES, CORRUPTED_TITLE, _any, table


@dataclass
class _Frame:
    canonical: str
    raw: str


def _strip_frames(frames: list[str]) -> list[str]:
    out = []
    for orig in frames:
        frame = orig
        for prefix in R.STRIP_FRAME_PREFIXES:
            if orig.startswith(prefix) and len(orig) - len(prefix) < len(frame):
                frame = orig[len(prefix) :]
        out.append(frame)
    return out


def _stall_extractor(frames: list[str]) -> tuple[str, int]:
    anchors = table().stall_anchors
    prev, prev_idx = frames[0], 0
    for i, frame in enumerate(frames):
        if anchors.search(frame):
            if "smp_call_function" in frame:
                return "smp_call_function", i
            return prev, prev_idx
        prev, prev_idx = frame, i
    return "", -1


def _hang_extractor(frames: list[str]) -> tuple[str, int]:
    for i, frame in enumerate(frames):
        for anchor, replacement in R.HANG_ANCHORS.items():
            if anchor in frame:
                return (replacement or frame), i
    for i, frame in enumerate(frames):
        if not any(skip in frame for skip in R.HANG_SKIP):
            return frame, i
    return "", -1


EXTRACTORS: dict[str, Callable[[list[str]], tuple[str, int]]] = {
    "stall": _stall_extractor,
    "hang": _hang_extractor,
}


@lru_cache(maxsize=65536)
def _skipped(frame: str) -> bool:
    return R.SKIP_RE.search(frame) is not None


def _append_frames(frames: list[str], match: re.Match[str] | None, skip: re.Pattern[str] | None) -> None:
    if match is None:
        return
    for group in match.groups():
        if group is None or _skipped(group):
            continue
        if skip is None or not skip.search(group):
            frames.append(group)


def _may_start_stack(line: str) -> bool:
    """Cheap necessary condition for rules.STACK_STARTS (each holds one of these words)."""
    return ("race" in line or "acktrace" in line or "Allocated" in line or "Freed" in line
            or "Uninit" in line or "badaddr" in line)


def _extract_frames_impl(
    output: str,
    fmt: F.CompiledFormat,
    parts: tuple[re.Pattern[str] | None, ...],
    extractor: Callable[[list[str]], _Frame],
) -> tuple[list[_Frame], bool]:
    t = table()
    lines = output.split("\n")
    li = 0
    raw: list[str] = []
    results: list[_Frame] = []
    ok = True
    num_stacks = 0
    idx = 0
    while True:
        if idx == len(parts) or (parts[idx] is None and num_stacks > 0):
            key = extractor(raw)
            if not key.canonical:
                key, ok = _Frame("corrupted", "corrupted"), False
            results.append(key)
            raw = []
        if idx == len(parts):
            break
        part = parts[idx]
        if part is None:
            num_stacks += 1
            nxt = parts[idx + 1] if idx != len(parts) - 1 else None
            while li < len(lines):
                ln = lines[li]
                li += 1
                if "should_fail" in ln and _any(t.corrupted_lines, ln):
                    ok = False
                    break
                if _may_start_stack(ln) and t.any_stack_start.search(ln):
                    break
                if nxt is not None:
                    m = nxt.search(ln)
                    if m is not None:
                        _append_frames(raw, m, fmt.skip)
                        idx += 1
                        break
                m = None
                for frame_re in t.frame_res:
                    m = frame_re.search(ln)
                    if m is not None:
                        break
                _append_frames(raw, m, fmt.skip)
        else:
            while li < len(lines):
                ln = lines[li]
                li += 1
                if "should_fail" in ln and _any(t.corrupted_lines, ln):
                    ok = False
                    break
                m = part.search(ln)
                if m is None:
                    continue
                _append_frames(raw, m, fmt.skip)
                break
        idx += 1
    return results, ok


def _extract_frames(fmt: F.CompiledFormat, output: str) -> tuple[list[_Frame], bool]:
    stack = fmt.spec.stack
    assert stack is not None
    custom = EXTRACTORS[stack.extractor] if stack.extractor else None

    def extractor(raw: list[str]) -> _Frame:
        if not raw:
            return _Frame("", "")
        stripped = _strip_frames(raw)
        if custom is None:
            return _Frame(stripped[0], raw[0])
        frame, idx = custom(stripped)
        return _Frame(frame, raw[idx]) if frame else _Frame("", "")

    frames, ok = _extract_frames_impl(output, fmt, fmt.parts, extractor)
    if ok or not fmt.parts2:
        return frames, ok
    return _extract_frames_impl(output, fmt, fmt.parts2, extractor)


def _fill(template: str, args: Sequence[str]) -> str:
    try:
        return template.format(*args)
    except (IndexError, KeyError, ValueError):
        return template


@dataclass
class Description:
    title: str
    corrupted: str
    alt_titles: list[str]
    format: F.CompiledFormat | None


def describe(output: str, oops: F.CompiledOops) -> Description:
    """syzkaller's extractDescription: the title of the report ``output``."""
    start = len(output)
    desc = ""
    corrupted = ""
    alts: list[str] = []
    chosen: F.CompiledFormat | None = None
    matched_title = False
    for fmt in oops.formats:
        match = fmt.title.search(output)
        if match is None or match.start() > start:
            continue
        if match.start() == start and desc:
            continue
        if match.start() < start:
            desc = ""
            chosen = None
            start = match.start()
        matched_title = True
        if fmt.report is not None:
            match = fmt.report.search(output)
            if match is None:
                continue
        args = [g or "" for g in match.groups()]
        frames: list[_Frame] = []
        corrupted = ""
        if fmt.spec.stack is not None:
            frames, ok = _extract_frames(fmt, output[match.start() :])
            if not ok:
                corrupted = CORRUPTED_NO_FRAMES
        full = args + [f.canonical for f in frames]
        desc = _fill(fmt.spec.fmt, full)
        alts.extend(_fill(alt, full) for alt in fmt.spec.alt)
        for variant in _partially_stripped(args, frames):
            alt_title = _fill(fmt.spec.fmt, variant)
            if alt_title != desc:
                alts.append(alt_title)
            alts.extend(_fill(alt, variant) for alt in fmt.spec.alt)
        chosen = fmt
    alts = list(dict.fromkeys(alts))
    if not desc:
        if matched_title:
            corrupted = "matched title but not report regexp"
        pos = output.find(oops.spec.header)
        if pos == -1:
            return Description("", corrupted, alts, chosen)
        end = output.find("\n", pos)
        desc = output[pos : end if end != -1 else len(output)]
    if not corrupted and chosen is not None and chosen.spec.corrupted:
        corrupted = "report format is marked as corrupted"
    return Description(desc, corrupted, alts, chosen)


def _partially_stripped(args: list[str], frames: list[_Frame]) -> list[list[str]]:
    out = []
    for i in range(len(R.STRIP_FRAME_PREFIXES) + 1):
        prefix = R.STRIP_FRAME_PREFIXES[i - 1] if i else ""
        add = not prefix
        trimmed = []
        for frame in frames:
            value = frame.raw[len(prefix) :] if prefix and frame.raw.startswith(prefix) else frame.raw
            if value != frame.raw:
                add = True
            trimmed.append(value)
        if add:
            out.append(args + trimmed)
    return out


def is_corrupted(title: str, report: str, fmt: F.CompiledFormat | None) -> str:
    if CORRUPTED_TITLE.search(title):
        return "title matches corrupted regexp"
    if fmt is None or fmt.spec.no_stack_trace:
        return ""
    t = table()
    has_stack = False
    for key in t.stack_starts:
        match = key.search(report)
        if match is None:
            continue
        frames = report[match.start() :].split("\n")
        if len(frames) < 4:
            return "call trace is missed"
        corrupted = True
        for line in frames[1:16]:
            if t.any_stack_start.search(line):
                break
            if "(stack is not available)" in line or _any(t.frame_res, line):
                has_stack = True
                corrupted = False
                break
        if key is not t.riscv_start and corrupted:
            return "no frames in a stack trace"
    if not has_stack:
        return "no stack trace in report"
    return ""


# ---- title normalisation --------------------------------------------------------------------

_REPLACEMENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"syz-executor\.?[0-9]+((/|:)[0-9]+)?"), "syz-executor"),
    (re.compile(r"syzkaller[0-9]+((/|:)[0-9]+)?"), "syzkaller"),
    (re.compile(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), r"\1ADDR"),
    (re.compile(r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})"), "IP"),
    (re.compile(r"(\.\w+)(:[0-9]+)+", re.ASCII), r"\1:LINE"),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"), r"\1"),
    (re.compile(r"CPU#[0-9]+"), "CPU"),
    (re.compile(r"(\W)(\d+)(\W|$)", re.ASCII), r"\1NUM\3"),
    (re.compile(r"(\d+){7,}", re.ASCII), "NUM"),
)
MAX_TITLE = 120


def normalize_title(title: str) -> str:
    for pattern, replacement in _REPLACEMENTS:
        while True:
            new = pattern.sub(replacement, title)
            if new == title:
                break
            title = new
    out = []
    prev = " "
    for ch in title[:MAX_TITLE]:
        if ch == "\t":
            ch = " "
        elif ch < " " or ch >= "\x7f":
            continue
        if ch == " " and prev == " ":
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


def crash_type(title: str) -> str:
    for kind, prefixes in R.TITLE_TYPES:
        if title.startswith(prefixes):
            return kind
    return "UNKNOWN"

