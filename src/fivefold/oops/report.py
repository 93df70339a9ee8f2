"""Find where crash reports start in a log and cut each one out (syzkaller's findReport).

A report starts on the first line holding a header of the table (and none of the header's
false positives); its console prefix gives the *context* (``[T123]``/``[C1]`` caller ids, or
plain ``console``). The report is every later line of the same context, ``? `` frames and
other tasks' lines dropped, up to the next crash header that is not a known follower
(a panic after a BUG, a double fault during a fault).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

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
#: How far a report is read past the start of the next crash. syzkaller reads to the end of
#: the log, which makes a log with thousands of crashes (a WARN storm) quadratic; what lies
#: this far past the next header no longer changes a title.
TAIL_AFTER_NEXT = 200
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


@cache
def _header_automaton() -> Any:
    """Aho-Corasick over the table's headers (ahocorasick-rs), or None: then the regex is used."""
    try:
        import ahocorasick_rs
    except ImportError:
        return None
    return ahocorasick_rs.AhoCorasick(sorted({o.spec.header for o in table().oopses}))


def oops_lines(text: str, start: int = 0) -> dict[int, F.CompiledOops]:
    """Line start -> table entry, for every line at or after ``start`` that starts a report.

    One pass finds every header occurrence; each line holding one is then checked against
    the headers' false positives, in table order.
    """
    automaton = _header_automaton()
    if automaton is not None:
        hits = sorted(start + m[1] for m in automaton.find_matches_as_indexes(text[start:]))
    else:
        hits = [m.start() for m in table().header_re.finditer(text, start)]
    found: dict[int, F.CompiledOops] = {}
    done = -1  # end of the last line checked: several headers on one line are one check
    for hit in hits:
        if hit < done:
            continue
        line_start = text.rfind("\n", 0, hit) + 1
        line_end = text.find("\n", hit)
        if line_end == -1:
            line_end = len(text)
        done = line_end
        oops = match_oops(text[line_start:line_end])
        if oops is not None:
            found[line_start] = oops
    return found


def find_first(text: str, start: int = 0) -> tuple[F.CompiledOops, int] | None:
    headers = oops_lines(text, start)
    if not headers:
        return None
    first = min(headers)
    return headers[first], first


#: Lines that change how the rest of a report is read, by what they do.
_MARKERS = (
    ("Disabling lock debugging due to kernel taint", "taint"),
    ("Sending NMI from CPU", "nmi"),
    ("Kernel panic - not syncing", "tail"),
    ("WARNING: possible circular locking dependency detected", "tail"),
)


@dataclass
class TextScan:
    """What one pass over a whole text finds, shared by all the crashes cut from it.

    Without it every crash would search the rest of the log again: quadratic in a log
    with thousands of crashes (a WARN storm).
    """

    headers: dict[int, F.CompiledOops]  # line start -> table entry, lines that start reports
    header_starts: list[int]  # the same, sorted
    markers: dict[int, str]  # line start -> "taint" | "nmi" | "tail"
    info_starts: list[int]  # line starts of informational messages with a stack
    text: str = ""
    last_seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> TextScan:
        headers = oops_lines(text)
        info = table().info_with_stack.finditer(text)
        info_starts = sorted({text.rfind("\n", 0, m.start()) + 1 for m in info})
        return cls(headers, sorted(headers), _marker_lines(text, 0), info_starts, text)

    def first_header(self, start: int) -> int | None:
        index = bisect.bisect_left(self.header_starts, start)
        return self.header_starts[index] if index < len(self.header_starts) else None

    def last(self, needle: str) -> int:
        """Where ``needle`` last occurs in the text (-1 if never), searched once per needle."""
        if needle not in self.last_seen:
            self.last_seen[needle] = self.text.rfind(needle)
        return self.last_seen[needle]

    def first_info(self, start: int) -> int:
        index = bisect.bisect_left(self.info_starts, start)
        return self.info_starts[index] if index < len(self.info_starts) else -1


def _marker_lines(text: str, start: int) -> dict[int, str]:
    """Line start -> marker kind, from one ``str.find`` scan per marker instead of per line."""
    found: dict[int, str] = {}
    for needle, kind in _MARKERS:
        pos = text.find(needle, start)
        while pos != -1:
            found.setdefault(text.rfind("\n", 0, pos) + 1, kind)
            pos = text.find(needle, pos + len(needle))
    return found


def _report_min_lines(oops_line: str) -> int:
    # KMSAN reports have no "Call Trace" header and are shorter before the panic.
    return 16 if "BUG: KMSAN:" in oops_line else 22


def cut_report(text: str, oops: F.CompiledOops, start: int, scan: TextScan | None = None) -> RawReport:
    """Collects the report that starts at byte ``start`` of ``text`` (syzkaller's findReport)."""
    t = table()
    first_nl = text.find("\n", start)
    context = _context(text[start : first_nl if first_nl != -1 else len(text)])
    max_prefix = 50 if TASK_CONTEXT.search(context) else 5
    # Up to max_prefix lines of the same context before the header, read backwards (at most
    # 64 KB back): they often say what led to the crash.
    prefix: list[str] = []
    limit = max(0, start - 64 * 1024)
    end_pos = start - 1
    while end_pos > limit and len(prefix) < max_prefix:
        line_start = text.rfind("\n", 0, end_pos) + 1
        line = text[line_start:end_pos].rstrip("\r")
        end_pos = line_start - 1
        ctx = _context(line)
        stripped, questionable = _strip(line, ctx)
        if ctx == context and stripped and not questionable:
            prefix.append(stripped)
    prefix.reverse()
    report: list[str] = []
    report_len = 0
    report_end = 0
    end = 0
    second = 0
    text_lines = 0
    skip_text = cpu_traceback = False
    oops_line = ""
    if scan is None:
        scan = TextScan.of(text)
    headers = scan.headers
    detail: list[str] = []
    detail_end = start
    info_line = scan.first_info(first_nl + 1) if first_nl != -1 else -1
    markers = scan.markers
    has_cr = scan.last("\r") != -1  # once per text, not once per crash
    min_lines = 22
    after_second = 0
    for m in LINE_RE.finditer(text, start):
        line_start, le = m.span()
        if second:
            after_second += 1
            if after_second > TAIL_AFTER_NEXT:
                break
        line = m.group()
        if has_cr and line.endswith("\r"):
            line = line[:-1]
        is_oops_line = line_start == start
        if is_oops_line:
            oops_line = line
            min_lines = _report_min_lines(oops_line)
        if line_start in headers:
            end = le
            if not is_oops_line and second == 0 and not _any(t.start_ignores, line):
                second = line_start
        elif line_start == info_line and second == 0:
            second = line_start
        prefix_group, caller = m.group(1, 2)
        if prefix_group is None:
            ctx = _context(line) if " login: " in line else ""
        else:
            ctx = caller or CONSOLE
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
        marker = markers.get(line_start)
        if marker is not None:
            if marker == "taint":
                skip_line = True
            elif marker == "nmi":
                cpu_traceback = True
            elif text_lines > min_lines:
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

