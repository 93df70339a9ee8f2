"""Disassemble the `Code:` line of a kernel crash report with capstone.

The kernel prints the bytes around the faulting program counter with the trapping unit in
brackets: x86 as bytes (``<0f> 0b``), ARM and ARM64 as 32-bit words (``(e7f001f2)``), Thumb
as 16-bit halfwords (``(de02)``). This module turns that line into instructions, finds where
the trapping instruction starts and says when it is a deliberate trap (``BUG()``/``WARN()``).

x86 is variable length and the line usually starts in the middle of an instruction, so, like
the kernel's ``scripts/decodecode``, the bytes are decoded twice: once from the earliest start
that lands exactly on the trapping byte ("all code"), and once from the trapping byte itself.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARCHES", "CodeReport", "Instruction", "decode_code_line", "normalize_arch"]

ARCHES = ("x86_64", "i386", "arm", "thumb", "arm64")

_ALIASES = {
    "x86_64": "x86_64",
    "x86-64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "i386": "i386",
    "i686": "i386",
    "x86": "i386",
    "386": "i386",
    "arm": "arm",
    "arm32": "arm",
    "thumb": "thumb",
    "thumb2": "thumb",
    "arm64": "arm64",
    "aarch64": "arm64",
}

# One unit of the Code line: hex digits, optionally in the trapping brackets.
_TOKEN = re.compile(r"^([<(]?)([0-9a-fA-F]+)([>)]?)$")
# x86 never needs more than 15 bytes of one instruction; beyond that no start can align.
_X86_MAX_INSN = 15


def normalize_arch(arch: str) -> str | None:
    """The canonical name of an architecture spelling (``amd64`` -> ``x86_64``), or None."""
    return _ALIASES.get(arch.strip().lower())


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction; ``offset`` counts bytes from the start of the Code line."""

    offset: int
    bytes_hex: str
    mnemonic: str
    op_str: str
    is_trapping: bool = False
    address: int | None = None

    @property
    def text(self) -> str:
        return f"{self.mnemonic} {self.op_str}".rstrip()

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "address": self.address,
            "bytes": self.bytes_hex,
            "mnemonic": self.mnemonic,
            "op_str": self.op_str,
            "is_trapping": self.is_trapping,
        }


@dataclass(frozen=True)
class CodeReport:
    """The decoded Code line.

    ``instructions`` is the best-guess listing of every byte (undecodable bytes appear as
    ``.byte``/``.word`` pseudo-instructions); ``from_trap`` is the listing that starts at the
    trapping instruction. ``trap`` names a deliberate trap instruction at the trapping offset
    (``ud2``, ``udf #0x...``, ``brk #0x800``) and ``trap_meaning`` what the kernel uses it for.
    """

    arch: str
    raw: bytes
    trap_offset: int | None
    instructions: tuple[Instruction, ...]
    from_trap: tuple[Instruction, ...] = ()
    trap: str | None = None
    trap_meaning: str | None = None
    unit: int = 1
    base_address: int | None = field(default=None, compare=False)

    @property
    def trapping(self) -> Instruction | None:
        for insn in self.instructions:
            if insn.is_trapping:
                return insn
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "bytes": self.raw.hex(),
            "trap_offset": self.trap_offset,
            "trap": self.trap,
            "trap_meaning": self.trap_meaning,
            "instructions": [i.as_dict() for i in self.instructions],
            "from_trap": [i.as_dict() for i in self.from_trap],
        }

    def render(self) -> str:
        """A listing in the style of ``scripts/decodecode``, trapping instruction marked."""
        lines = ["All code", "========"]
        lines += _listing(self.instructions)
        if self.from_trap and self.arch in ("x86_64", "i386"):
            lines += ["", "Code starting with the faulting instruction"]
            lines += ["=" * len(lines[-1])]
            lines += _listing(self.from_trap, rebase=self.from_trap[0].offset)
        if self.trap:
            meaning = f" ({self.trap_meaning})" if self.trap_meaning else ""
            lines += ["", f"Trapping instruction is a deliberate trap: {self.trap}{meaning}"]
        return "\n".join(lines)


def _listing(insns: Sequence[Instruction], rebase: int = 0) -> list[str]:
    width = max((len(i.bytes_hex) for i in insns), default=0)
    out = []
    for insn in insns:
        where = insn.offset - rebase
        mark = "*" if insn.is_trapping else " "
        tail = "\t\t<-- trapping instruction" if insn.is_trapping else ""
        out.append(f"{where:4x}:{mark}\t{insn.bytes_hex:<{width}} \t{insn.text}{tail}")
    return out


def _parse_tokens(text: str) -> tuple[list[str], int | None] | None:
    """Hex units and the index of the bracketed one; None when the line holds no code."""
    idx = text.find("Code:")
    if idx >= 0:
        text = text[idx + len("Code:") :]
    units: list[str] = []
    trap: int | None = None
    for token in text.split():
        m = _TOKEN.match(token)
        if not m:
            break
        opening, digits, closing = m.groups()
        if (opening == "<") != (closing == ">") or (opening == "(") != (closing == ")"):
            break
        if units and len(digits) != len(units[0]):
            break
        if opening and trap is None:
            trap = len(units)
        units.append(digits.lower())
    if not units or len(units[0]) not in (2, 4, 8):
        return None
    return units, trap


def decode_code_line(line: str, arch: str, *, pc: int | None = None) -> CodeReport | None:
    """Decode one ``Code:`` line for ``arch`` (x86_64, i386, arm, thumb, arm64 or an alias).

    ``pc``, when known, is the address of the trapping instruction: listings then carry real
    addresses and branch targets. Returns None when the line holds no code bytes (``Code: Bad
    RIP value.``) or units of the wrong width for the architecture. An ``arm`` line printed in
    halfwords is Thumb, and a ``thumb`` line printed in words is ARM: the kernel picks the
    width from the mode the CPU was in, so the width is the better witness.
    """
    name = normalize_arch(arch)
    parsed = _parse_tokens(line)
    if name is None or parsed is None:
        return None
    units, trap_unit = parsed
    width = len(units[0])
    if name in ("arm", "thumb"):
        name = {8: "arm", 4: "thumb"}.get(width, "")
    expected = {"x86_64": 2, "i386": 2, "arm": 8, "thumb": 4, "arm64": 8}.get(name)
    if expected != width:
        return None
    unit = width // 2
    if unit == 1:
        raw = bytes(int(u, 16) for u in units)
    else:
        fmt = "<I" if unit == 4 else "<H"
        raw = b"".join(struct.pack(fmt, int(u, 16)) for u in units)
    trap_offset = None if trap_unit is None else trap_unit * unit
    base = None if pc is None or trap_offset is None else pc - trap_offset

    from fivefold.oops import code_capstone  # capstone is only imported when a line is decoded

    if name in ("x86_64", "i386"):
        insns, from_trap = code_capstone.decode_x86(raw, trap_offset, name, base)
    else:
        insns = code_capstone.decode_fixed(raw, trap_offset, name, base)
        from_trap = [i for i in insns if trap_offset is not None and i.offset >= trap_offset]
    trap, meaning = None, None
    trapping = next((i for i in insns if i.is_trapping), None)
    if trapping is not None:
        trap, meaning = code_capstone.classify_trap(name, trapping, raw)
    return CodeReport(
        arch=name,
        raw=raw,
        trap_offset=trap_offset,
        instructions=tuple(insns),
        from_trap=tuple(from_trap),
        trap=trap,
        trap_meaning=meaning,
        unit=unit,
        base_address=base,
    )


def hex_units(data: bytes, unit: int) -> str:
    """Bytes written the way the kernel prints them: bytes, halfwords or words."""
    if unit == 1:
        return " ".join(f"{b:02x}" for b in data)
    fmt = "<I" if unit == 4 else "<H"
    cut = len(data) - len(data) % unit
    parts: Iterable[int] = (struct.unpack_from(fmt, data, i)[0] for i in range(0, cut, unit))
    return " ".join(f"{v:0{unit * 2}x}" for v in parts)
