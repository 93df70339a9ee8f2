"""ELF files for symbolization: validation, architecture and the function symbol table."""

from __future__ import annotations

import bisect
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fivefold._common.errors import FivefoldError
from fivefold.oops.code import normalize_arch

_MACHINES = {"EM_X86_64": "x86_64", "EM_386": "i386", "EM_ARM": "arm", "EM_AARCH64": "arm64"}


@dataclass(frozen=True)
class Symbol:
    """A function symbol. ``span`` is the size kallsyms prints: the distance to the next
    symbol in the same section, padding included, which is often larger than ``size``."""

    name: str
    address: int
    size: int
    span: int
    section: int


class ElfImage:
    """An opened, checked ELF file (vmlinux or a module) and its function symbols."""

    def __init__(self, path: Path, expected_arch: str | None = None) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = path
        if not path.exists():
            raise FivefoldError(f"{path}: no such file")
        if not path.is_file():
            raise FivefoldError(f"{path}: not a regular file, expected an ELF file")
        self.abspath = str(path.resolve())  # what the tools are told; resolved once
        self._stream: IO[bytes] = path.open("rb")
        try:
            if self._stream.read(4) != b"\x7fELF":
                raise FivefoldError(f"{path}: not an ELF file")
            self._stream.seek(0)
            try:
                self.elf: Any = ELFFile(self._stream)
                machine = self.elf["e_machine"]
            except (ELFError, ValueError, KeyError, OSError) as exc:
                raise FivefoldError(f"{path}: unreadable ELF file ({exc})") from exc
            self.arch = _MACHINES.get(machine, str(machine))
            self.relocatable = self.elf["e_type"] == "ET_REL"
            if expected_arch is not None:
                want = normalize_arch(expected_arch) or expected_arch
                want = "arm" if want == "thumb" else want
                if want != self.arch:
                    raise FivefoldError(f"{path}: ELF file for {self.arch}, but the crash is from {want}")
            self._by_name: dict[str, list[Symbol]] = defaultdict(list)
            self._sorted: list[Symbol] = []
            try:
                self._load_symbols()
            except FivefoldError:
                raise
            except Exception as exc:  # pyelftools raises many kinds on a damaged file
                raise FivefoldError(f"{path}: unreadable ELF file ({type(exc).__name__}: {exc})") from exc
            self._keys = [s.address for s in self._sorted]
        except BaseException:
            self._stream.close()
            raise

    def close(self) -> None:
        self._stream.close()

    @property
    def address_bits(self) -> int:
        return 64 if self.elf.elfclass == 64 else 32

    def has_dwarf(self) -> bool:
        try:
            return self.elf.get_section_by_name(".debug_info") is not None
        except Exception:  # a damaged section table: no usable DWARF either
            return False

    def _load_symbols(self) -> None:
        # The table is unpacked with struct rather than pyelftools' symbol objects: those
        # cost ~0.2 ms each, half a minute for the ~150k symbols of a vmlinux.
        sections = list(self.elf.iter_sections())
        table = next((s for s in sections if s.name == ".symtab"), None) or next(
            (s for s in sections if s.name == ".dynsym"), None
        )
        if table is None or not 0 < table["sh_link"] < len(sections):
            return
        strtab = sections[table["sh_link"]].data()
        executable = {i: bool(sec["sh_flags"] & 0x4) for i, sec in enumerate(sections)}  # SHF_EXECINSTR
        order = "<" if self.elf.little_endian else ">"
        if self.elf.elfclass == 64:
            fmt, fields = order + "IBBHQQ", (0, 4, 5, 1, 3)  # name, value, size, info, shndx
        else:
            fmt, fields = order + "IIIBBH", (0, 1, 2, 3, 5)
        width = struct.calcsize(fmt)
        data = table.data()
        data = data[: len(data) - len(data) % width]
        is_arm = self.arch == "arm"
        found: list[tuple[int, str, int, int]] = []
        i_name, i_value, i_size, i_info, i_shndx = fields
        for entry in struct.iter_unpack(fmt, data):
            kind = entry[i_info] & 0xF
            shndx = entry[i_shndx]
            if kind not in (0, 2) or not executable.get(shndx) or not entry[i_name]:  # NOTYPE, FUNC
                continue
            start = entry[i_name]
            end = strtab.find(b"\0", start)
            name = strtab[start : end if end >= 0 else len(strtab)].decode("utf-8", "replace")
            if not name or name.startswith("$"):
                continue  # mapping symbols ($a, $t, $x, $d) mark code/data, not functions
            address = entry[i_value]
            if is_arm and kind == 2:
                address &= ~1  # the Thumb bit
            found.append((address, name, entry[i_size], shndx))
        found.sort()
        # kallsyms' size: up to the next higher address in the same section (or its end).
        # One backward pass per section: a vmlinux has ~100k function symbols.
        ends: list[int] = [0] * len(found)
        next_start: dict[int, int] = {}
        next_after: dict[int, int] = {}
        for i in range(len(found) - 1, -1, -1):
            address, _, _, shndx = found[i]
            if shndx not in next_after:
                next_after[shndx] = sections[shndx]["sh_addr"] + sections[shndx]["sh_size"]
            if next_start.get(shndx, address) > address:
                next_after[shndx] = next_start[shndx]
            ends[i] = next_after[shndx]
            next_start[shndx] = address
        for (address, name, size, shndx), end in zip(found, ends, strict=True):
            symbol = Symbol(name, address, size, max(end - address, size), shndx)
            self._by_name[name].append(symbol)
            self._sorted.append(symbol)

    def lookup(self, name: str, offset: int | None, size: int | None) -> Symbol | None:
        """The symbol ``name+offset/size`` refers to; duplicates (static functions of the same
        name in several files) are told apart by the printed size."""
        candidates = self._by_name.get(name)
        if not candidates:
            return None
        if len(candidates) > 1 and size is not None:
            exact = [s for s in candidates if size in (s.size, s.span)]
            if exact:
                return exact[0]
        if len(candidates) > 1 and offset is not None:
            inside = [s for s in candidates if offset < max(s.size, s.span)]
            if inside:
                return inside[0]
        return candidates[0]

    def symbol_at(self, address: int) -> Symbol | None:
        """The function symbol containing ``address`` (for the name of raw-address frames)."""
        i = bisect.bisect_right(self._keys, address) - 1
        while i >= 0:
            sym = self._sorted[i]
            if address < sym.address + max(sym.span, 1):
                return sym
            if sym.address < address:
                return None
            i -= 1
        return None

    def laid_out_dwarf(self) -> tuple[Any, dict[int, int]]:
        """DWARF of a relocatable module as if loaded: every allocated section gets its own
        base address, like the kernel's module loader does, so that ``.text`` and
        ``.init.text`` (both at 0 in the file) no longer overlap. Done on a patched in-memory
        copy whose symbol values include their section's base; pyelftools then applies the
        DWARF relocations with those values. Returns (dwarf info, section index -> base)."""
        import io

        from elftools.elf.elffile import ELFFile

        sections = list(self.elf.iter_sections())
        bases: dict[int, int] = {}
        cursor = 0x10000
        for index, section in enumerate(sections):
            if section["sh_flags"] & 0x2 and section["sh_size"]:  # SHF_ALLOC
                bases[index] = cursor
                cursor += (section["sh_size"] + 0xFFFF) & ~0xFFF
        self._stream.seek(0)
        patched = bytearray(self._stream.read())
        table = next((s for s in sections if s.name == ".symtab"), None)
        if table is not None:
            order = "<" if self.elf.little_endian else ">"
            if self.elf.elfclass == 64:
                fmt, value_at, shndx_at = order + "IBBHQQ", 8, 6
                value_fmt = order + "Q"
            else:
                fmt, value_at, shndx_at = order + "IIIBBH", 4, 14
                value_fmt = order + "I"
            width = struct.calcsize(fmt)
            start = table["sh_offset"]
            for entry in range(table["sh_size"] // width):
                at = start + entry * width
                (shndx,) = struct.unpack_from(order + "H", patched, at + shndx_at)
                if shndx in bases:
                    (value,) = struct.unpack_from(value_fmt, patched, at + value_at)
                    struct.pack_into(value_fmt, patched, at + value_at, value + bases[shndx])
        elf = ELFFile(io.BytesIO(bytes(patched)))
        return elf.get_dwarf_info(), bases

    def is_code(self, index: int) -> bool:
        section = self.elf.get_section(index)
        return bool(section["sh_flags"] & 0x4) and section["sh_type"] == "SHT_PROGBITS"

    def section_name(self, index: int) -> str:
        return str(self.elf.get_section(index).name)

    def shadowed(self, symbol: Symbol) -> bool:
        """In a relocatable module every section starts at 0, and llvm-symbolizer and
        addr2line search the first executable section that spans the offset: a symbol in a
        later one (``.init.text``, ``.exit.text``) would be looked up in the wrong place."""
        if not self.relocatable:
            return False
        for index, section in enumerate(self.elf.iter_sections()):
            if index == symbol.section:
                return False
            if (
                section["sh_flags"] & 0x4
                and section["sh_size"] > symbol.address
                and section["sh_type"] == "SHT_PROGBITS"
            ):
                return True
        return False
