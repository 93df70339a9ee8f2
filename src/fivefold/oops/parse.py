"""Find crash reports in a log, cut them out, and give each a title.

The algorithm follows syzkaller's ``pkg/report`` so that titles agree with syzbot's:

1. :mod:`fivefold.oops.report` finds the first header line and cuts the report out;
2. :mod:`fivefold.oops.title` tries the header's formats on it: the earliest title match wins,
   its template is filled with the regex groups and the frame found by the stack rules;
3. the title is normalised and the report checked for damage (no stack where one is
   expected, timestamps inside the title);
4. the next unrelated header starts the next crash.

Then :mod:`fivefold.oops.details` fills context, registers and frames.
"""

from __future__ import annotations

from fivefold.oops.crash import Crash
from fivefold.oops.report import GCE_HANGUP, RawReport, TextScan, cut_report, table
from fivefold.oops.title import Description, crash_type, describe, is_corrupted, normalize_title


def _suppressed(text: str) -> bool:
    """Whether the log shows a test-harness artefact (syzkaller's suppressions)."""
    if not any(key in text for key in SUPPRESSION_KEYS):
        return False
    return table().suppressions.search(text) is not None


# Every suppression pattern holds one of these: a cheap scan rules most logs out.
SUPPRESSION_KEYS = ("panic:", "fatal error:", "SIGBUS", "SYZFAIL", "Out of memory", "Killed process",
                    "lowmemorykiller", "INIT: PANIC", "stack smashing")


def parse_one(text: str, start_at: int = 0, scan: TextScan | None = None) -> tuple[Crash, RawReport] | None:
    """The first crash at or after ``start_at``; ``text`` is already normalised.

    ``scan`` (one :class:`fivefold.oops.report.TextScan` per text) keeps reading several
    crashes from one text linear.
    """
    if scan is None:
        scan = TextScan.of(text)
    start = scan.first_header(start_at)
    if start is None:
        return None
    oops = scan.headers[start]
    raw = cut_report(text, oops, start, scan)
    report = raw.report
    desc = describe(report[: raw.report_end], oops)
    if not desc.title:
        report = text[start : max(raw.end, start)]
        desc = describe(report, oops)
        if not desc.title:
            line_end = text.find("\n", start)
            desc = Description(text[start : line_end if line_end != -1 else len(text)], "no title", [], None)
    corrupted = desc.corrupted or is_corrupted(desc.title, report, desc.format)
    if scan.last(GCE_HANGUP) >= start_at:
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
        panicked=scan.last("Kernel panic - not syncing") >= start_at,
        start=start,
        end=raw.lines_end,
        report=raw.report,
    )
    return crash, raw


def parse_text(text: str) -> list[tuple[Crash, RawReport]]:
    """Every crash in ``text``: each report ends where the next unrelated crash starts."""
    results: list[tuple[Crash, RawReport]] = []
    scan = TextScan.of(text)
    if not scan.headers:
        return results
    suppressed = _suppressed(text)
    pos = 0
    while pos < len(text):
        parsed = parse_one(text, pos, scan)
        if parsed is None:
            break
        parsed[0].suppressed = suppressed
        results.append(parsed)
        raw = parsed[1]
        if raw.next_start <= raw.start:
            break
        pos = raw.next_start
    return results


__all__ = ["crash_type", "normalize_title", "parse_one", "parse_text"]
