"""Symbolization from DWARF with pyelftools, for machines without llvm-symbolizer/addr2line.

It does what ``addr2line -f -i`` does: the line table gives the innermost file:line, and the
nest of ``DW_TAG_subprogram``/``DW_TAG_inlined_subroutine`` DIEs around the address gives the
inline chain, each inlined call's ``DW_AT_call_file``/``DW_AT_call_line`` being the caller's
location. Slower than the tools (pure Python), but needs nothing outside the package.
"""

from __future__ import annotations

import bisect
import logging
import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

from fivefold.oops.symbolize_elf import ElfImage
from fivefold.oops.symbolize_types import SourceLocation, chain

log = logging.getLogger("fivefold.oops.symbolize")
_SCOPES = ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine", "DW_TAG_lexical_block")
_Row = tuple[int, int, str, int, int]  # address, 0 = end of sequence / 1 = row, file, line, column


class DwarfIndex:
    """CU address ranges of one ELF; a CU's line rows are decoded on its first lookup, so a
    large vmlinux costs only the CUs a log touches."""

    def __init__(self, image: ElfImage) -> None:
        self.image = image
        self.dwarf: Any = None
        self.bases: dict[int, int] = {}
        if image.has_dwarf():
            if image.relocatable:
                self.dwarf, self.bases = image.laid_out_dwarf()
            else:
                self.dwarf = image.elf.get_dwarf_info()
        self._cus: list[tuple[int, int, Any]] = []
        self._rows: dict[int, tuple[list[tuple[int, int]], list[_Row]]] = {}
        self._answers: dict[int, list[SourceLocation]] = {}
        if self.dwarf is not None:
            for cu in self.dwarf.iter_CUs():
                for low, high in self._ranges(cu.get_top_DIE(), cu):
                    self._cus.append((low, high, cu))

    def _rows_of(self, cu: Any) -> tuple[list[tuple[int, int]], list[_Row]]:
        cached = self._rows.get(cu.cu_offset)
        if cached is not None:
            return cached
        rows: list[_Row] = []
        program = self.dwarf.line_program_for_CU(cu)
        comp_dir = _comp_dir(cu)
        for entry in program.get_entries() if program is not None else ():
            state = entry.state
            if state is None:
                continue
            if state.end_sequence:
                rows.append((state.address, 0, "", 0, 0))
            else:
                name = _file_name(program, state.file, comp_dir)
                rows.append((state.address, 1, name, state.line, state.column))
        # Stable: among rows at one address the last one wins (as in LLVM's lookup), and an
        # end-of-sequence row sorts before a new sequence starting at the same address.
        rows.sort(key=lambda r: (r[0], r[1]))
        self._rows[cu.cu_offset] = ([(r[0], r[1]) for r in rows], rows)
        return self._rows[cu.cu_offset]

    def _ranges(self, die: Any, cu: Any) -> list[tuple[int, int]]:
        attrs = die.attributes
        if "DW_AT_low_pc" in attrs and "DW_AT_high_pc" in attrs:
            low = attrs["DW_AT_low_pc"].value
            high = attrs["DW_AT_high_pc"]
            end = high.value if high.form == "DW_FORM_addr" else low + high.value
            return [(low, end)]
        if "DW_AT_ranges" in attrs:
            lists = self.dwarf.range_lists()
            if lists is None:
                return []
            base = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
            base_address = base.value if base is not None else 0
            out = []
            for entry in lists.get_range_list_at_offset(attrs["DW_AT_ranges"].value, cu=cu):
                if hasattr(entry, "base_address"):
                    base_address = entry.base_address
                elif entry.is_absolute:
                    out.append((entry.begin_offset, entry.end_offset))
                else:
                    out.append((base_address + entry.begin_offset, base_address + entry.end_offset))
            return out
        return []

    def line_at(self, cu: Any, address: int) -> tuple[str, int, int] | None:
        keys, rows = self._rows_of(cu)
        i = bisect.bisect_right(keys, (address, 1)) - 1
        if i < 0 or rows[i][1] == 0:
            return None
        _, _, file, line, column = rows[i]
        return file, line, column

    def _cu_at(self, address: int) -> Any:
        for low, high, cu in self._cus:
            if low <= address < high:
                return cu
        return None

    def _scopes(self, die: Any, cu: Any, address: int) -> Iterator[Any]:
        """The nest of scope DIEs containing ``address``, outermost first."""
        for child in die.iter_children():
            if child.tag not in _SCOPES and child.tag != "DW_TAG_namespace":
                continue
            if child.tag == "DW_TAG_namespace" or any(
                lo <= address < hi for lo, hi in self._ranges(child, cu)
            ):
                if child.tag != "DW_TAG_namespace":
                    yield child
                yield from self._scopes(child, cu, address)
                return

    def symbolize(self, address: int, section: int | None = None) -> list[SourceLocation]:
        """Symbolize a link-time address; in a relocatable module, an offset into the
        section with index ``section`` (default: the first code section)."""
        if self.image.relocatable:
            if section is None:
                section = min((i for i in self.bases if self.image.is_code(i)), default=-1)
            address += self.bases.get(section, 0)
        # Logs repeat frames (the same syscall path in every report): walk the DIEs once.
        cached = self._answers.get(address)
        if cached is None:
            cached = self._answers[address] = self._symbolize(address)
        return list(cached)

    def _symbolize(self, address: int) -> list[SourceLocation]:
        if self.dwarf is None:
            return []
        cu = self._cu_at(address)
        if cu is None:
            return []
        row = self.line_at(cu, address)
        nest = [d for d in self._scopes(cu.get_top_DIE(), cu, address) if d.tag != "DW_TAG_lexical_block"]
        if row is None and not nest:
            return []
        symbol = None if self.image.relocatable else self.image.symbol_at(address)
        fallback = symbol.name if symbol else "??"
        if not nest:
            assert row is not None
            return chain([(fallback, row[0], row[1], row[2])])
        program = self.dwarf.line_program_for_CU(cu)
        frames: list[tuple[str, str, int, int | None]] = []
        file, line, column = row if row is not None else ("", 0, 0)
        for die in reversed(nest):
            frames.append((_die_name(die) or fallback, file, line, column))
            attrs = die.attributes
            if die.tag == "DW_TAG_inlined_subroutine" and program is not None:
                file = (
                    _file_name(program, attrs["DW_AT_call_file"].value, _comp_dir(cu))
                    if "DW_AT_call_file" in attrs
                    else ""
                )
                line = attrs["DW_AT_call_line"].value if "DW_AT_call_line" in attrs else 0
                column = attrs["DW_AT_call_column"].value if "DW_AT_call_column" in attrs else 0
        return chain(frames)


class PyElfTools:
    """The pure-Python backend: a :class:`DwarfIndex` per ELF, built on first use."""

    name = "pyelftools"

    def __init__(self) -> None:
        self._indexes: dict[str, DwarfIndex] = {}
        self._broken: set[str] = set()

    def lookup(self, requests: Sequence[tuple[ElfImage, int]]) -> list[list[SourceLocation]]:
        return self.lookup_in_sections([(elf, None, address) for elf, address in requests])

    def lookup_in_sections(
        self, requests: Sequence[tuple[ElfImage, int | None, int]]
    ) -> list[list[SourceLocation]]:
        """(ELF, section index or None, address); the section matters in modules only."""
        out: list[list[SourceLocation]] = []
        for elf, section, address in requests:
            index = self._indexes.get(str(elf.path))
            try:
                if index is None:
                    index = self._indexes[str(elf.path)] = DwarfIndex(elf)
                out.append(index.symbolize(address, section))
            except Exception as exc:  # damaged DWARF: pyelftools raises many kinds; lose a frame, not the log
                if str(elf.path) not in self._broken:
                    self._broken.add(str(elf.path))
                    log.warning("%s: unreadable DWARF (%s: %s)", elf.path, type(exc).__name__, exc)
                out.append([])
        return out

    def close(self) -> None:
        self._indexes.clear()


def _comp_dir(cu: Any) -> str:
    attr = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _die_name(die: Any) -> str | None:
    """DW_AT_name, following abstract origins and specifications (inlined copies have none)."""
    for _ in range(8):
        attrs = die.attributes
        if "DW_AT_name" in attrs:
            value = attrs["DW_AT_name"].value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        for ref in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if ref in attrs:
                die = die.get_DIE_from_attribute(ref)
                break
        else:
            return None
    return None


def _file_name(program: Any, index: int, comp_dir: str) -> str:
    """A line-program file index as a path; DWARF 5 counts files and directories from 0,
    earlier versions from 1, directory 0 being the compilation directory."""
    files = program["file_entry"]
    version = program.header["version"]
    i = index if version >= 5 else index - 1
    if not 0 <= i < len(files):
        return ""
    entry = files[i]
    name = entry.name.decode("utf-8", "replace") if isinstance(entry.name, bytes) else str(entry.name)
    dirs = program["include_directory"]
    d = entry.dir_index if version >= 5 else entry.dir_index - 1
    if posixpath.isabs(name):
        return name
    if not 0 <= d < len(dirs):
        return posixpath.join(comp_dir, name) if comp_dir else name
    directory = dirs[d]
    directory = directory.decode("utf-8", "replace") if isinstance(directory, bytes) else str(directory)
    return posixpath.join(directory, name)
