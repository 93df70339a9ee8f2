"""fivefold.oops: Linux kernel crash-log analysis.

``parse(text)`` finds every crash in a log and gives each a syzkaller-compatible title,
type, context, registers and backtrace; ``parse_stream(file)`` does the same for logs of any
size in bounded memory.
"""

from __future__ import annotations

from fivefold.oops.api import analyze, parse, parse_stream
from fivefold.oops.crash import SCHEMA_VERSION, Context, Crash, Frame, Registers
from fivefold.oops.symbolize_types import SourceLocation

__all__ = [
    "SCHEMA_VERSION",
    "Context",
    "Crash",
    "Frame",
    "Registers",
    "SourceLocation",
    "analyze",
    "parse",
    "parse_stream",
]
