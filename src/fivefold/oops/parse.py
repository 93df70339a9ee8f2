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
from fivefold.oops.report import GCE_HANGUP, RawReport, cut_report, find_first, table
from fivefold.oops.title import Description, crash_type, describe, is_corrupted, normalize_title


def parse_one(text: str, start_at: int = 0) -> tuple[Crash, RawReport] | None:
    """The first crash at or after ``start_at``; ``text`` is already normalised."""
    found = find_first(text, start_at)
    if found is None:
        return None
    oops, start = found
    raw = cut_report(text, oops, start)
    report = raw.report
    desc = describe(report[: raw.report_end], oops)
    if not desc.title:
        report = text[start : max(raw.end, start)]
        desc = describe(report, oops)
        if not desc.title:
            line_end = text.find("\n", start)
            desc = Description(text[start : line_end if line_end != -1 else len(text)], "no title", [], None)
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


__all__ = ["crash_type", "normalize_title", "parse_one", "parse_text"]
