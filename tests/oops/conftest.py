"""Fixtures for the oops tests: the syzkaller report set (parsed once) and the shipped samples."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "fivefold" / "oops" / "data" / "samples"


@dataclass
class Expected:
    name: str
    log: bytes
    title: str = ""
    alt: list[str] = field(default_factory=list)
    type: str = "UNKNOWN"
    corrupted: bool = False


def load_report(path: Path) -> Expected:
    """One syzkaller test file: header lines, an empty line, the log, optionally REPORT:."""
    data = path.read_bytes()
    head, _, log = data.partition(b"\n\n")
    cut = log.find(b"\nREPORT:\n")
    if cut != -1:
        log = log[:cut]
    expected = Expected(path.name, log)
    for line in head.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "TITLE":
            expected.title = value
        elif key == "ALT":
            expected.alt.append(value)
        elif key == "TYPE":
            expected.type = value
        elif key == "CORRUPTED":
            expected.corrupted = value == "Y"
    return expected


@dataclass
class Scored:
    expected: list[Expected]
    got: list[list]  # type: ignore[type-arg]
    cpu_seconds: float


@pytest.fixture(scope="session")
def syzkaller(shared_dir: Path) -> Scored:
    from fivefold.oops import parse
    from fivefold.oops.report import table

    reports = sorted((shared_dir / "oops" / "syzkaller-reports").iterdir(), key=lambda p: p.name)
    expected = [load_report(p) for p in reports if p.is_file()]
    table()  # compile the table outside the timing
    started = time.process_time()
    got = [parse(e.log) for e in expected]
    return Scored(expected, got, time.process_time() - started)


@pytest.fixture()
def sample() -> callable:  # type: ignore[valid-type]
    def read(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    return read
