"""Find crash reports in a log, cut them out, and give each a title.

The algorithm follows syzkaller's ``pkg/report`` so that titles agree with syzbot's:

1. the first line holding a header of the table (and none of its false positives) starts a
   report; its console prefix gives the *context* (``[T123]``/``[C1]`` caller ids);
2. the report is every later line of the same context (other tasks' interleaved lines are
   dropped), up to the next unrelated crash header;
3. the formats of the matched header are tried on the report; the earliest title match
   wins, its template is filled with the regex groups and the frame found by the stack rules;
4. the title is normalised (addresses, numbers, line numbers), and the report is checked for
   signs of damage (no stack where one is expected, timestamps inside the title).

Then :mod:`fivefold.oops.details` fills context, registers and frames.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from fivefold.oops import formats as F
from fivefold.oops.crash import Crash
from fivefold.oops.lines import normalize_text

CONSOLE_RE = re.compile(
    r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:.* login: )?(?:\<[0-9]+\>)?"
    r"\[ *[0-9]+\.[0-9]+\](\[ *(?:C|T)[0-9]+\])? ",
    re.ASCII,
)
# The same without the rare "host login: " prefix, whose ".*" makes every line backtrack.
CONSOLE_FAST_RE = re.compile(
    r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:\<[0-9]+\>)?\[ *[0-9]+\.[0-9]+\](\[ *(?:C|T)[0-9]+\])? ",
    re.ASCII,
)
# One match per line: the console prefix (group 1) with its caller id (group 2), if any.
LINE_RE = re.compile(
    r"^((?:\*\* [0-9]+ printk messages dropped \*\* )?(?:\<[0-9]+\>)?\[ *[0-9]+\.[0-9]+\]"
    r"(\[ *(?:C|T)[0-9]+\])? )?.*$",
    re.ASCII | re.M,
)
TASK_CONTEXT = re.compile(r"\[ *T[0-9]+\]")
CPU_CONTEXT = re.compile(r"\[ *C[0-9]+\]")
CONSOLE = "console"
MAX_DETAIL_LINES = 4000
CORRUPTED_NO_FRAMES = "extracted no frames"
GCE_HANGUP = "serialport: VM disconnected."
CORRUPTED_TITLE = re.compile(r"\[ *[0-9]+\.[0-9]+\]")


@dataclass
class _Table:
    oopses: list[F.CompiledOops]
    header_re: re.Pattern[str]  # any header: the cheap first filter
    start_ignores: list[re.Pattern[str]]
    stack_starts: list[re.Pattern[str]]
    riscv_start: re.Pattern[str]
    frame_res: list[re.Pattern[str]]
    corrupted_lines: list[re.Pattern[str]]
    stall_anchors: re.Pattern[str]
    suppressions: re.Pattern[str]
    info_with_stack: re.Pattern[str]
    any_stack_start: re.Pattern[str]
    skip: re.Pattern[str]


@cache
def table() -> _Table:
    oopses = F.compile_table()
    headers = sorted({o.spec.header for o in oopses}, key=len, reverse=True)
    stack_starts = [F.compile_template(s) for s in F.STACK_STARTS]
    return _Table(
        oopses=oopses,
        header_re=re.compile("|".join(re.escape(h) for h in headers)),
        start_ignores=[F.compile_template(s) for s in F.REPORT_START_IGNORES],
        stack_starts=stack_starts,
        riscv_start=stack_starts[-1],
        frame_res=[F.compile_template(s) for s in F.FRAME_PATTERNS],
        corrupted_lines=[F.compile_template(s) for s in F.CORRUPTED_LINES],
        stall_anchors=F.compile_template("|".join(F.STALL_ANCHORS)),
        suppressions=re.compile("|".join(F.SUPPRESSIONS)),
        info_with_stack=re.compile("|".join(re.escape(m) for m in F.INFO_MESSAGES_WITH_STACK)),
        any_stack_start=F.compile_template("|".join(f"(?:{s})" for s in F.STACK_STARTS)),
        skip=F.SKIP_RE,
    )


def _any(patterns: Sequence[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def match_oops(line: str) -> F.CompiledOops | None:
    """The first table entry whose header is on ``line`` and not suppressed there."""
    t = table()
    if t.header_re.search(line) is None:
        return None
    for oops in t.oopses:
        if oops.spec.header in line and not _any(oops.suppressions, line):
            return oops
    return None


def _context(line: str) -> str:
    match = (CONSOLE_RE if " login: " in line else CONSOLE_FAST_RE).match(line)
    if match is None:
        return ""
    return match.group(1) or CONSOLE


def _strip(line: str, context: str) -> tuple[str, bool]:
    """The line without its console prefix, and whether it is a questionable frame."""
    if not context:
        return line, False
    line = line[line.find("] ") + 2:]
    if "<EOI>" not in line:
        if " ? " in line:
            return line[line.find(" ? ") + 2:], True
        if line.endswith(" (unreliable)"):
            return line[:-13], True
    return line, False


@dataclass
class RawReport:
    oops: F.CompiledOops
    start: int
    end: int
    context: str
    prefix: str  # up to 5 (50 with caller ids) lines of the same context before the header
    report: str  # lines of the report's context, prefixes stripped
    report_end: int  # where the report stops being trustworthy (next crash)
    next_start: int  # the next crash header not belonging to this report, or -1
    lines: list[str]  # the report's lines for details: "? " frames kept, up to the next crash
    lines_end: int  # where the last of those lines ends


def _lines(text: str, start: int = 0) -> list[tuple[int, int]]:
    spans = []
    pos = start
    size = len(text)
    while pos < size:
        nl = text.find("\n", pos)
        if nl == -1:
            nl = size
        spans.append((pos, nl))
        pos = nl + 1
    return spans


def find_first(text: str, start: int = 0) -> tuple[F.CompiledOops, int] | None:
    header_re = table().header_re
    pos = start
    while True:
        hit = header_re.search(text, pos)
        if hit is None:
            return None
        line_start = text.rfind("\n", 0, hit.start()) + 1
        line_end = text.find("\n", hit.start())
        if line_end == -1:
            line_end = len(text)
        oops = match_oops(text[line_start:line_end])
        if oops is not None:
            return oops, line_start
        pos = line_end + 1


def _oops_lines(text: str, start: int) -> dict[int, F.CompiledOops]:
    """Line start -> table entry, for every line at or after ``start`` that starts a report."""
    found: dict[int, F.CompiledOops] = {}
    header_re = table().header_re
    pos = start
    while True:
        hit = header_re.search(text, pos)
        if hit is None:
            return found
        line_start = text.rfind("\n", 0, hit.start()) + 1
        line_end = text.find("\n", hit.start())
        if line_end == -1:
            line_end = len(text)
        oops = match_oops(text[line_start:line_end])
        if oops is not None:
            found[line_start] = oops
        pos = line_end + 1


def _report_min_lines(oops_line: str) -> int:
    # KMSAN reports have no "Call Trace" header and are shorter before the panic.
    return 16 if "BUG: KMSAN:" in oops_line else 22


def cut_report(text: str, oops: F.CompiledOops, start: int) -> RawReport:
    """Collects the report that starts at byte ``start`` of ``text`` (syzkaller's findReport)."""
    t = table()
    first_nl = text.find("\n", start)
    context = _context(text[start: first_nl if first_nl != -1 else len(text)])
    max_prefix = 50 if TASK_CONTEXT.search(context) else 5
    prefix: list[str] = []
    # Only the last lines before the header can be prefix; scanning further back is wasted work.
    back = max(0, start - 64 * 1024)
    if back:
        back = text.find("\n", back) + 1
    for ls, le in _lines(text[:start], back):
        line = text[ls:le]
        if line.endswith("\r"):
            line = line[:-1]
        ctx = _context(line)
        stripped, questionable = _strip(line, ctx)
        if ctx == context and stripped and not questionable:
            prefix.append(stripped)
            if len(prefix) > max_prefix:
                prefix.pop(0)
    report: list[str] = []
    report_len = 0
    report_end = 0
    end = 0
    second = 0
    text_lines = 0
    skip_text = cpu_traceback = False
    oops_line = ""
    headers = _oops_lines(text, start)
    detail: list[str] = []
    detail_end = start
    info = t.info_with_stack.search(text, first_nl + 1) if first_nl != -1 else None
    info_line = text.rfind("\n", 0, info.start()) + 1 if info is not None else -1
    ls = start
    del ls
    for m in LINE_RE.finditer(text, start):
        line_start, le = m.span()
        line = m.group()
        if line.endswith("\r"):
            line = line[:-1]
        is_oops_line = line_start == start
        if is_oops_line:
            oops_line = line
        if line_start in headers:
            end = le
            if not is_oops_line and second == 0 and not _any(t.start_ignores, line):
                second = line_start
        elif line_start == info_line and second == 0:
            second = line_start
        if m.group(1) is None:
            ctx = _context(line) if " login: " in line else ""
        else:
            ctx = m.group(2) or CONSOLE
        if ctx:
            body = line[line.find("] ") + 2:]
            stripped, questionable = body, False
            if " ? " in body or body.endswith(" (unreliable)"):
                stripped, questionable = _strip(line, ctx)
        else:
            body = stripped = line
            questionable = False
        same = ctx == context or (cpu_traceback and CPU_CONTEXT.search(ctx) is not None)
        if (is_oops_line or same) and (second == 0 or line_start < second) and len(detail) < MAX_DETAIL_LINES:
            detail.append(body)
            detail_end = le
        if not is_oops_line and (questionable or not same):
            continue
        text_lines += 1
        skip_line = skip_text
        if "Disabling lock debugging due to kernel taint" in line:
            skip_line = True
        elif "Sending NMI from CPU" in line:
            cpu_traceback = True
        elif ("Kernel panic - not syncing" in line
              or "WARNING: possible circular locking dependency detected" in line) \
                and text_lines > _report_min_lines(oops_line):
            # The panic_on_warn panic or a lockdep splat caused by the oops itself repeats
            # the same stack; once enough of the real report is in, drop the rest.
            skip_text = skip_line = True
        if not is_oops_line and skip_line:
            continue
        report.append(stripped)
        report_len += len(stripped) + 1
        if second == 0 or (context and context != CONSOLE):
            report_end = report_len
    body = "\n".join(report) + ("\n" if report else "")
    head = "\n".join(prefix) + ("\n" if prefix else "")
    return RawReport(oops, start, end, context, head, body, report_end, second if second else -1, detail,
                     detail_end)


# ---- titles ---------------------------------------------------------------------------------

@dataclass
class _Frame:
    canonical: str
    raw: str


def _strip_frames(frames: list[str]) -> list[str]:
    out = []
    for orig in frames:
        frame = orig
        for prefix in F.STRIP_FRAME_PREFIXES:
            if orig.startswith(prefix) and len(orig) - len(prefix) < len(frame):
                frame = orig[len(prefix):]
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
        for anchor, replacement in F.HANG_ANCHORS.items():
            if anchor in frame:
                return (replacement or frame), i
    for i, frame in enumerate(frames):
        if not any(skip in frame for skip in F.HANG_SKIP):
            return frame, i
    return "", -1


EXTRACTORS: dict[str, Callable[[list[str]], tuple[str, int]]] = {
    "stall": _stall_extractor,
    "hang": _hang_extractor,
}


@lru_cache(maxsize=65536)
def _skipped(frame: str) -> bool:
    return F.SKIP_RE.search(frame) is not None


def _append_frames(frames: list[str], match: re.Match[str] | None, skip: re.Pattern[str] | None) -> None:
    if match is None:
        return
    for group in match.groups():
        if group is None or _skipped(group):
            continue
        if skip is None or not skip.search(group):
            frames.append(group)


def _extract_frames_impl(output: str, fmt: F.CompiledFormat, parts: tuple[re.Pattern[str] | None, ...],
                         extractor: Callable[[list[str]], _Frame]) -> tuple[list[_Frame], bool]:
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
                if _any(t.corrupted_lines, ln):
                    ok = False
                    break
                if t.any_stack_start.search(ln):
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
                if _any(t.corrupted_lines, ln):
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
            frames, ok = _extract_frames(fmt, output[match.start():])
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
        desc = output[pos: end if end != -1 else len(output)]
    if not corrupted and chosen is not None and chosen.spec.corrupted:
        corrupted = "report format is marked as corrupted"
    return Description(desc, corrupted, alts, chosen)


def _partially_stripped(args: list[str], frames: list[_Frame]) -> list[list[str]]:
    out = []
    for i in range(len(F.STRIP_FRAME_PREFIXES) + 1):
        prefix = F.STRIP_FRAME_PREFIXES[i - 1] if i else ""
        add = not prefix
        trimmed = []
        for frame in frames:
            value = frame.raw[len(prefix):] if prefix and frame.raw.startswith(prefix) else frame.raw
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
        frames = report[match.start():].split("\n")
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
    for kind, prefixes in F.TITLE_TYPES:
        if title.startswith(prefixes):
            return kind
    return "UNKNOWN"


# ---- one report -----------------------------------------------------------------------------

def parse_one(text: str, start_at: int = 0) -> tuple[Crash, RawReport] | None:
    """The first crash at or after ``start_at``; ``text`` is already normalised."""
    found = find_first(text, start_at)
    if found is None:
        return None
    oops, start = found
    raw = cut_report(text, oops, start)
    report = raw.report
    desc = describe(report[:raw.report_end], oops)
    if not desc.title:
        report = text[start:max(raw.end, start)]
        desc = describe(report, oops)
        if not desc.title:
            line_end = text.find("\n", start)
            desc = Description(text[start: line_end if line_end != -1 else len(text)], "no title", [], None)
    corrupted = desc.corrupted or is_corrupted(desc.title, report, desc.format)
    if GCE_HANGUP in text[start_at:]:
        corrupted = corrupted or "console hangup"
    title = normalize_title(desc.title)
    alts = [normalize_title(a) for a in desc.alt_titles]
    crash = Crash(
        title=title,
        kind=oops.spec.kind,
        type=crash_type(title),
        alt_titles=list(dict.fromkeys(a for a in alts if a != title)),
        corrupted=bool(corrupted),
        corrupted_reason=corrupted or None,
        panicked="Kernel panic - not syncing" in text[start_at:],
        suppressed=table().suppressions.search(text) is not None,
        start=start,
        end=raw.lines_end,
        report=raw.report,
    )
    return crash, raw


def parse_text(text: str) -> list[tuple[Crash, RawReport]]:
    """Every crash in ``text``: each report ends where the next unrelated crash starts."""
    results: list[tuple[Crash, RawReport]] = []
    pos = 0
    while pos < len(text):
        parsed = parse_one(text, pos)
        if parsed is None:
            break
        results.append(parsed)
        raw = parsed[1]
        if raw.next_start <= raw.start:
            break
        pos = raw.next_start
    return results


__all__ = ["describe", "normalize_text", "normalize_title", "parse_text"]
