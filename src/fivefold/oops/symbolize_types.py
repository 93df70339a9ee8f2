"""The value types of symbolization, kept apart so that the backends can share them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FrameQuery:
    """One backtrace frame to symbolize.

    Either ``function`` (+ ``offset``, and ``size`` to tell duplicate static functions
    apart), optionally in ``module``, or a raw runtime ``address`` (KASLR-shifted, as the log
    prints it). ``is_return_address`` is true for every frame but the faulting PC: a return
    address points after the call, so it is looked up at pc-1 to land on the call's line.
    """

    function: str | None
    offset: int | None
    size: int | None
    module: str | None
    address: int | None
    is_return_address: bool = True


@dataclass(frozen=True)
class SourceLocation:
    """One entry of an inline chain. ``inlined`` is true when this function was inlined into
    the next entry of the chain (its caller)."""

    function: str
    file: str
    line: int
    column: int | None
    inlined: bool

    def __str__(self) -> str:
        col = f":{self.column}" if self.column else ""
        tag = " [inline]" if self.inlined else ""
        return f"{self.function} {self.file}:{self.line}{col}{tag}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "inlined": self.inlined,
        }


def chain(frames: list[tuple[str, str, int, int | None]]) -> list[SourceLocation]:
    """SourceLocations from (function, file, line, column), innermost first: all but the
    last were inlined into their successor. Unknown entries (no file or line 0) are dropped."""
    known = [f for f in frames if f[1] and f[1] != "??" and f[2] > 0]
    return [
        SourceLocation(fn or "??", file, line, col or None, i < len(known) - 1)
        for i, (fn, file, line, col) in enumerate(known)
    ]
