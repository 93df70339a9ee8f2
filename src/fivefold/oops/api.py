"""The public entry points: parse a log held in memory, or stream one of any size."""

from __future__ import annotations

from fivefold.oops.crash import Crash
from fivefold.oops.lines import normalize
from fivefold.oops.parse import parse_text


def parse(text: str | bytes) -> list[Crash]:
    """Every crash in ``text``, in log order; never raises on any input."""
    norm = normalize(text)
    crashes = []
    for crash, _raw in parse_text(norm.text):
        crash.start = norm.origin(crash.start)
        crash.end = norm.origin(crash.end)
        crashes.append(crash)
    return crashes


def analyze(*args: object, **kwargs: object) -> list[Crash]:
    raise NotImplementedError


def parse_stream(*args: object, **kwargs: object) -> list[Crash]:
    raise NotImplementedError
