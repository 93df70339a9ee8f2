"""Find where crash reports start in a log and cut each one out (syzkaller's findReport).

A report starts on the first line holding a header of the table (and none of the header's
false positives); its console prefix gives the *context* (``[T123]``/``[C1]`` caller ids, or
plain ``console``). The report is every later line of the same context, ``? `` frames and
other tasks' lines dropped, up to the next crash header that is not a known follower
(a panic after a BUG, a double fault during a fault).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from fivefold.oops import formats as F
from fivefold.oops import rules as R

CONSOLE_RE = re.compile(
    r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:.* login: )?(?:\<[0-9]+\>)?"
    r"\[ *[0-9]+\.[0-9]+\](\[ *(?:C|T)[0-9]+\])? ",
    re.ASCII,
)
# The same without the rare "host login: " prefix, whose ".*" makes every line backtrack.
CONSOLE_FAST_RE = re.compile(
    r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:\<[0-9]+\>)?\[ *[0-9]+\.[0-9]+\]"
    r"(\[ *(?:C|T)[0-9]+\])? ",
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
    stack_starts = [F.compile_template(s) for s in R.STACK_STARTS]
    return _Table(
        oopses=oopses,
        header_re=re.compile("|".join(re.escape(h) for h in headers)),
        start_ignores=[F.compile_template(s) for s in R.REPORT_START_IGNORES],
        stack_starts=stack_starts,
        riscv_start=stack_starts[-1],
        frame_res=[F.compile_template(s) for s in R.FRAME_PATTERNS],
        corrupted_lines=[F.compile_template(s) for s in R.CORRUPTED_LINES],
        stall_anchors=F.compile_template("|".join(R.STALL_ANCHORS)),
        suppressions=re.compile("|".join(R.SUPPRESSIONS)),
        info_with_stack=re.compile("|".join(re.escape(m) for m in R.INFO_MESSAGES_WITH_STACK)),
        any_stack_start=F.compile_template("|".join(f"(?:{s})" for s in R.STACK_STARTS)),
        skip=R.SKIP_RE,
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
    line = line[line.find("] ") + 2 :]
    if "<EOI>" not in line:
        if " ? " in line:
            return line[line.find(" ? ") + 2 :], True
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
    context = _context(text[start : first_nl if first_nl != -1 else len(text)])
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
            body = line[line.find("] ") + 2 :]
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
        elif (
            "Kernel panic - not syncing" in line
            or "WARNING: possible circular locking dependency detected" in line
        ) and text_lines > _report_min_lines(oops_line):
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
    return RawReport(
        oops, start, end, context, head, body, report_end, second if second else -1, detail, detail_end
    )

