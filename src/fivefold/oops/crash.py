"""The model objects a parsed log becomes: :class:`Crash`, :class:`Frame`, :class:`Registers`.

They are plain dataclasses so that rendering, bucketing and the JSON schema
(:data:`SCHEMA_VERSION`, documented in ``docs/oops.md``) all read the same fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fivefold.oops.symbolize_types import SourceLocation

#: Bumped whenever a field of the JSON document changes meaning or disappears.
SCHEMA_VERSION = 1


@dataclass
class Frame:
    """One line of a backtrace."""

    function: str | None
    offset: int | None = None
    size: int | None = None
    module: str | None = None
    build_id: str | None = None
    address: int | None = None
    reliable: bool = True  # False for x86 "? func" and powerpc "(unreliable)" frames
    inline: bool = False  # printed as "[inline]" (already symbolized logs)
    file: str | None = None  # "file.c:123" when the log is already symbolized
    stack: str = "task"  # which trace it belongs to: task, irq, exception, alloc, free, ...
    source: list[SourceLocation] = field(default_factory=list)  # inline chain, innermost first

    def label(self) -> str:
        if self.function is None:
            return f"0x{self.address:x}" if self.address is not None else "?"
        text = self.function
        if self.offset is not None and self.size is not None:
            text += f"+0x{self.offset:x}/0x{self.size:x}"
        if self.module:
            text += f" [{self.module}]"
        return text


@dataclass
class Registers:
    """Register values as printed, by architecture-specific name (lower case)."""

    arch: str | None = None  # x86_64, i386, arm, arm64, riscv64, powerpc, unknown
    values: dict[str, int] = field(default_factory=dict)
    pc_symbol: str | None = None  # "func+0x1/0x2" when the log names it
    lr_symbol: str | None = None
    segment: str | None = None  # x86 "0010" of "RIP: 0010:func+..."

    @property
    def pc(self) -> int | None:
        for name in ("rip", "eip", "pc"):
            if name in self.values:
                return self.values[name]
        return None


@dataclass
class Context:
    cpu: int | None = None
    pid: int | None = None
    comm: str | None = None
    tainted: str | None = None  # "G        W" flags or None when "Not tainted"
    release: str | None = None
    hardware: str | None = None
    modules: list[str] = field(default_factory=list)
    kernel_offset: int | None = None  # KASLR "Kernel Offset: 0x... from 0x..."


@dataclass
class Crash:
    """One crash found in a log."""

    title: str
    kind: str  # BUG, WARNING, INFO, PANIC: what the header says about severity
    type: str  # syzkaller class: KASAN-READ, WARNING, HANG, DoS, ... (UNKNOWN when none)
    alt_titles: list[str] = field(default_factory=list)
    corrupted: bool = False
    corrupted_reason: str | None = None
    panicked: bool = False
    fatal: bool = False  # the task was killed (BUG/Oops) rather than warned about (WARN)
    suppressed: bool = False
    start: int = 0  # byte offsets of the report in the log
    end: int = 0
    header: str = ""  # the line that started the report, prefix stripped
    report: str = ""  # the report text, prefixes stripped, other tasks' lines dropped
    context: Context = field(default_factory=Context)
    registers: Registers | None = None
    frames: list[Frame] = field(default_factory=list)
    blamed: Frame | None = None
    code_line: str | None = None
    code: Any = None  # fivefold.oops.code.CodeReport when the Code: line decodes
    arch: str | None = None
    guilty_file: str | None = None
    source: str | None = None  # the log's name, for buckets and rendering

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        code = self.code
        data["code"] = _code_dict(code) if code is not None else None
        return data


def _code_dict(code: Any) -> dict[str, Any]:
    for method in ("as_dict", "to_dict"):
        if hasattr(code, method):
            result: dict[str, Any] = getattr(code, method)()
            return result
    try:
        return asdict(code)
    except TypeError:
        return {"text": str(code)}
