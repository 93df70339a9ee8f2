"""The capstone half of :mod:`fivefold.oops.code`: decoding loops and trap recognition."""

from __future__ import annotations

import struct
from functools import cache
from typing import Any

import capstone

from fivefold.oops.code import _X86_MAX_INSN, Instruction, hex_units

# (offset, size, mnemonic, op_str) as capstone's disasm_lite yields them.
_Lite = tuple[int, int, str, str]

# ARM BUG() and friends (arch/arm/include/asm/bug.h, kgdb.h, probes).
_ARM_TRAPS = {
    0xE7F001F2: "BUG()",
    0xE7FFDEFE: "KGDB breakpoint or __builtin_trap()",
    0xE7FFDEFF: "KGDB compiled breakpoint",
    0xE7F001F8: "kprobe breakpoint",
    0xE7F001F9: "uprobe breakpoint",
}
_THUMB_TRAPS = {0xDE02: "BUG()", 0xDEFE: "KGDB breakpoint or __builtin_trap()", 0xDE18: "kprobe breakpoint"}


def _arm64_brk_meaning(imm: int) -> str:
    """What the kernel plants a ``brk #imm`` for (arch/arm64/include/asm/brk-imm.h)."""
    if imm == 0x800:
        return "BUG()/WARN()"
    if 0x900 <= imm <= 0x9FF:
        return "KASAN check failed"
    if 0x5500 <= imm <= 0x55FF:
        return "UBSAN check failed"
    if 0x8000 <= imm <= 0x8FFF:
        return "CFI check failed"
    named = {
        0x004: "kprobe breakpoint",
        0x005: "uprobe breakpoint",
        0x100: "fault fixup",
        0x3E8: "__builtin_trap()",
        0x400: "KGDB breakpoint",
        0x401: "KGDB compiled breakpoint",
    }
    return named.get(imm, "breakpoint")


@cache
def _engine(arch: str) -> Any:
    if arch == "x86_64":
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        md.syntax = capstone.CS_OPT_SYNTAX_ATT  # the syntax objdump and decodecode print
    elif arch == "i386":
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    elif arch == "arm":
        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM)
    elif arch == "thumb":
        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB)
    else:
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return md


def _run(arch: str, raw: bytes, start: int, end: int, base: int | None = None) -> list[_Lite]:
    """Decode raw[start:end] until the first byte capstone cannot decode.

    Offsets are from the start of ``raw``; capstone is told the real address (``base`` is
    the address of ``raw[0]``) so that branch targets read right.
    """
    origin = (base or 0) + start
    return [
        (start + addr - origin, size, mn, op)
        for addr, size, mn, op in _engine(arch).disasm_lite(raw[start:end], origin)
    ]


def _insn(raw: bytes, lite: _Lite, unit: int, trap: int | None, base: int | None) -> Instruction:
    off, size, mn, op = lite
    return Instruction(
        offset=off,
        bytes_hex=hex_units(raw[off : off + size], unit),
        mnemonic=mn,
        op_str=op,
        is_trapping=off == trap,
        address=None if base is None else base + off,
    )


def _data(raw: bytes, start: int, end: int, unit: int, trap: int | None, base: int | None) -> Instruction:
    """Bytes that decode to nothing: shown as data, the way objdump shows them."""
    chunk = raw[start:end]
    if unit == 1:
        mn, op = ".byte", ", ".join(f"0x{b:02x}" for b in chunk)
    else:
        mn = ".word" if unit == 4 else ".short"
        op = hex_units(chunk, unit)
        op = ", ".join(f"0x{v}" for v in op.split())
    return Instruction(
        offset=start,
        bytes_hex=hex_units(chunk, unit),
        mnemonic=mn,
        op_str=op,
        is_trapping=start == trap,
        address=None if base is None else base + start,
    )


def _sweep(
    arch: str, raw: bytes, start: int, end: int, unit: int, trap: int | None, base: int | None
) -> list[Instruction]:
    """Decode raw[start:end] fully: an undecodable unit becomes data and decoding goes on."""
    out: list[Instruction] = []
    pos = start
    while pos < end:
        decoded = _run(arch, raw, pos, end, base)
        out += [_insn(raw, lite, unit, trap, base) for lite in decoded]
        pos = decoded[-1][0] + decoded[-1][1] if decoded else pos
        if pos < end:
            # x86: a short undecodable tail is one instruction cut off by the end of the line.
            step = unit if unit > 1 else (end - pos if end - pos < _X86_MAX_INSN else 1)
            out.append(_data(raw, pos, min(pos + step, end), unit, trap, base))
            pos += step
    return out


def _aligned_start(arch: str, raw: bytes, trap: int, limit: int, step: int) -> int | None:
    """The start from which decoding lands exactly on the trapping offset.

    Several starts often do. The earliest wins unless it decodes zero bytes as instructions
    (``00 xx`` is ``add %al,...`` on x86, which compiled code almost never holds but the
    tail of an immediate or displacement often does): then a later start without them wins.
    """
    best: tuple[int, int] | None = None
    for skip in range(0, min(trap, limit) + 1, step):
        decoded = _run(arch, raw, skip, trap)
        if sum(size for _, size, _, _ in decoded) != trap - skip:
            continue
        suspicious = sum(1 for off, _, _, _ in decoded if arch in ("x86_64", "i386") and raw[off] == 0)
        if best is None or suspicious < best[0]:
            best = (suspicious, skip)
        if suspicious == 0:
            break
    return None if best is None else best[1]


def decode_x86(
    raw: bytes, trap: int | None, arch: str, base: int | None
) -> tuple[list[Instruction], list[Instruction]]:
    """The best-guess listing of the whole line and the listing from the trapping byte."""
    if trap is None:
        return _sweep(arch, raw, 0, len(raw), 1, None, base), []
    from_trap = _sweep(arch, raw, trap, len(raw), 1, trap, base)
    skip = _aligned_start(arch, raw, trap, _X86_MAX_INSN, 1)
    if skip is None:
        head = [_data(raw, 0, trap, 1, None, base)] if trap else []
    else:
        head = [_data(raw, 0, skip, 1, None, base)] if skip else []
        head += [_insn(raw, lite, 1, trap, base) for lite in _run(arch, raw, skip, trap, base)]
    return head + from_trap, from_trap


def decode_fixed(raw: bytes, trap: int | None, arch: str, base: int | None) -> list[Instruction]:
    """ARM and ARM64 word by word; Thumb halfword-aligned with 32-bit Thumb-2 pairs."""
    if arch in ("arm", "arm64"):
        out = []
        for off in range(0, len(raw) - len(raw) % 4, 4):
            decoded = _run(arch, raw, off, off + 4, base)
            if decoded:
                out.append(_insn(raw, decoded[0], 4, trap, base))
            else:
                out.append(_data(raw, off, off + 4, 4, trap, base))
        return out
    if trap is None:
        return _sweep(arch, raw, 0, len(raw), 2, None, base)
    # The first halfword may be the second half of a 32-bit instruction: start where the
    # decoding meets the trapping halfword.
    skip = _aligned_start(arch, raw, trap, 2, 2)
    head: list[Instruction] = []
    if skip is None:
        head = _sweep(arch, raw, 0, trap, 2, trap, base)
    else:
        head = [_data(raw, 0, skip, 2, None, base)] if skip else []
        head += [_insn(raw, lite, 2, trap, base) for lite in _run(arch, raw, skip, trap, base)]
    return head + _sweep(arch, raw, trap, len(raw), 2, trap, base)


def classify_trap(arch: str, insn: Instruction, raw: bytes) -> tuple[str | None, str | None]:
    """(trap, meaning) when the trapping instruction is one the kernel plants on purpose."""
    mn = insn.mnemonic.lower()
    if arch in ("x86_64", "i386"):
        if mn == "ud2":
            return "ud2", "BUG()/WARN()"
        if mn.startswith("ud1"):
            return "ud1", "UBSAN trap or WARN()"
        return None, None
    if arch == "arm64":
        if mn == "brk" and insn.offset + 4 <= len(raw):
            imm = (struct.unpack_from("<I", raw, insn.offset)[0] >> 5) & 0xFFFF
            return f"brk #{imm:#x}", _arm64_brk_meaning(imm)
        return None, None
    if arch == "arm" and insn.offset + 4 <= len(raw):
        word = struct.unpack_from("<I", raw, insn.offset)[0]
        if word in _ARM_TRAPS or mn == "udf":
            return f"udf ({word:08x})", _ARM_TRAPS.get(word, "undefined instruction trap")
        return None, None
    if arch == "thumb" and insn.offset + 2 <= len(raw):
        half = struct.unpack_from("<H", raw, insn.offset)[0]
        if half in _THUMB_TRAPS or mn == "udf":
            return f"udf ({half:04x})", _THUMB_TRAPS.get(half, "undefined instruction trap")
    return None, None
