"""Deduplicate the crashes of many logs into buckets.

Two crashes share a bucket when their titles or alternative titles intersect (syzkaller's
rule: the alternative titles, e.g. ``bad-access in foo``, join a KASAN report and a GPF of the
same bug). Buckets are the connected components of that relation, named by their most common
title.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Seen:
    log: str
    time: float  # the log's modification time: when the crash was last seen
    header: str
    corrupted: bool


@dataclass
class Bucket:
    title: str
    type: str
    titles: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.seen)

    def to_dict(self) -> dict[str, Any]:
        first = min(self.seen, key=lambda s: s.time)
        last = max(self.seen, key=lambda s: s.time)
        example = next((s for s in self.seen if not s.corrupted), self.seen[0])
        return {
            "title": self.title,
            "type": self.type,
            "count": self.count,
            "titles": self.titles,
            "first_seen": {"log": first.log, "time": first.time},
            "last_seen": {"log": last.log, "time": last.time},
            "example": {"log": example.log, "header": example.header},
            "logs": sorted({s.log for s in self.seen}),
        }


class _Sets:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def bucketize(entries: Iterable[tuple[str, float, Any]]) -> list[Bucket]:
    """``entries``: (log name, log time, Crash). Buckets, largest first."""
    sets = _Sets()
    crashes = []
    for log, when, crash in entries:
        names = [crash.title, *crash.alt_titles]
        # Corrupted titles ("... in corrupted") would glue unrelated bugs together.
        names = [n for n in names if not n.endswith(" in corrupted")] or [crash.title]
        for name in names[1:]:
            sets.union(names[0], name)
        sets.find(names[0])
        crashes.append((sets, names[0], log, when, crash))
    groups: dict[str, list[tuple[str, float, Any]]] = {}
    for sets_, key, log, when, crash in crashes:
        groups.setdefault(sets_.find(key), []).append((log, when, crash))
    buckets = []
    for members in groups.values():
        titles = Counter(c.title for _, _, c in members)
        title = titles.most_common(1)[0][0]
        types = Counter(c.type for _, _, c in members)
        bucket = Bucket(title=title, type=types.most_common(1)[0][0], titles=sorted(titles))
        bucket.seen = [Seen(log, when, c.header, c.corrupted) for log, when, c in members]
        buckets.append(bucket)
    buckets.sort(key=lambda b: (-b.count, b.title))
    return buckets


def log_files(paths: Iterable[Path]) -> list[Path]:
    """Files named, and the files under directories named (sorted, hidden ones skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
        else:
            files.append(path)
    return files


def render_buckets(buckets: list[Bucket]) -> str:
    if not buckets:
        return "no crash found\n"
    lines = [f"{len(buckets)} bucket(s), {sum(b.count for b in buckets)} crash(es)", ""]
    for bucket in buckets:
        data = bucket.to_dict()
        lines.append(f"{bucket.count:>5}  {bucket.title}  [{bucket.type}]")
        for title in bucket.titles:
            if title != bucket.title:
                lines.append(f"       also: {title}")
        lines.append(f"       first: {data['first_seen']['log']}  last: {data['last_seen']['log']}")
        lines.append(f"       example: {data['example']['log']}: {data['example']['header']}")
    return "\n".join(lines) + "\n"
