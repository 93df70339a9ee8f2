"""Turn backtrace frames into source locations with inline chains.

Usage::

    with Symbolizer(Path("vmlinux"), Path("modules"), kernel_offset=off) as sym:
        chains = sym.symbolize([FrameQuery("foo", 0x1c, 0x40, None, None)])

``func+off/size`` frames are resolved through the ELF symbol table (so KASLR does not matter
and duplicate static functions are told apart by their size); raw addresses are shifted back
by the KASLR offset; ``[mod]`` frames are resolved in ``modules_dir/mod.ko``. Every address
of a call goes, batched, through one long-lived llvm-symbolizer (or addr2line) process; with
neither installed, pyelftools reads the DWARF line tables itself, and a warning says so.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from fivefold._common.errors import FivefoldError, UsageError
from fivefold.oops.symbolize_dwarf import PyElfTools
from fivefold.oops.symbolize_elf import ElfImage
from fivefold.oops.symbolize_tools import (
    ADDR2LINES,
    LLVM_SYMBOLIZERS,
    Addr2line,
    Backend,
    BackendFailed,
    LlvmSymbolizer,
    find_tool,
)
from fivefold.oops.symbolize_types import FrameQuery, SourceLocation

# Where a frame is looked up: the ELF, the link-time address, the section index the address
# is an offset into (modules only) and whether that section is shadowed (module code outside
# the first code section, which the external tools cannot find without being told).
Placement = tuple[ElfImage, int, int | None, bool]

__all__ = ["BACKENDS", "DEMO_ELF_DIR", "FrameQuery", "SourceLocation", "Symbolizer", "kernel_offset_of"]

BACKENDS = ("llvm-symbolizer", "addr2line", "pyelftools")
# The shipped demo: vmlinux-x86_64, demo_mod.ko, their sources and demo-x86.log.
DEMO_ELF_DIR = Path(__file__).parent / "data" / "elf"
log = logging.getLogger("fivefold.oops.symbolize")
_KERNEL_OFFSET = re.compile(r"Kernel Offset: (0x[0-9a-fA-F]+) from (0x[0-9a-fA-F]+)")


def kernel_offset_of(text: str) -> int | None:
    """The KASLR offset a panic prints (``Kernel Offset: 0x1a000000 from 0xffffffff81000000``):
    what to subtract from raw runtime addresses to get link-time ones. The last one wins."""
    found = _KERNEL_OFFSET.findall(text)
    return int(found[-1][0], 16) if found else None


class Symbolizer:
    """Symbolize the frames of crash reports against one vmlinux (and its modules).

    ``backend`` forces one of :data:`BACKENDS` (default: the best one installed);
    ``search_path`` replaces ``$PATH`` when looking for the tools.
    """

    def __init__(
        self,
        vmlinux: Path,
        modules_dir: Path | None = None,
        *,
        kernel_offset: int = 0,
        expected_arch: str | None = None,
        backend: str | None = None,
        search_path: str | None = None,
    ) -> None:
        self.vmlinux = ElfImage(Path(vmlinux), expected_arch)
        self.arch = self.vmlinux.arch
        if modules_dir is not None and not Path(modules_dir).is_dir():
            self.vmlinux.close()
            raise FivefoldError(f"{modules_dir}: no such modules directory")
        self.modules_dir = None if modules_dir is None else Path(modules_dir)
        self.kernel_offset = kernel_offset
        if backend is not None and backend not in BACKENDS:
            self.vmlinux.close()
            raise UsageError(f"unknown symbolizer backend {backend!r} (choose from {', '.join(BACKENDS)})")
        self._modules: dict[str, ElfImage | None] = {}
        self._module_files: dict[str, Path] | None = None
        self._warned: set[str] = set()
        self._search_path = search_path if search_path is not None else os.environ.get("PATH", os.defpath)
        self._sections: Addr2line | bool | None = False  # addr2line -j, started on first need
        self._pyelftools: PyElfTools | None = None  # for those when addr2line is missing
        self._impl: Backend = self._choose(backend, search_path)
        self.backend: str = self._impl.name
        if not self.vmlinux.has_dwarf():
            self._warn_once(f"{self.vmlinux.path}: no DWARF debug info; frames get no file:line")

    def _choose(self, backend: str | None, search_path: str | None) -> Backend:
        path = self._search_path
        if backend in (None, "llvm-symbolizer"):
            exe = find_tool(LLVM_SYMBOLIZERS, path)
            if exe:
                return LlvmSymbolizer(exe)
        if backend in (None, "addr2line"):
            exe = find_tool(ADDR2LINES.get(self.arch, ("addr2line",)), path)
            if exe:
                return Addr2line(exe)
        if backend is None:
            log.warning(
                "neither llvm-symbolizer nor addr2line is installed: reading DWARF with pyelftools "
                "(slower; install the Debian packages llvm or binutils-multiarch)"
            )
        elif backend != "pyelftools":
            log.warning("%s is not installed: reading DWARF with pyelftools instead", backend)
        return PyElfTools()

    def __enter__(self) -> Symbolizer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._impl.close()
        if isinstance(self._sections, Addr2line):
            self._sections.close()
        if self._pyelftools is not None:
            self._pyelftools.close()
        for image in self._modules.values():
            if image is not None:
                image.close()
        self._modules.clear()
        self.vmlinux.close()

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _module(self, name: str) -> ElfImage | None:
        """``modules_dir/name.ko``, also found in subdirectories and with - and _ swapped
        (module names use _, file names often -)."""
        if name in self._modules:
            return self._modules[name]
        image = None
        if self.modules_dir is not None:
            if self._module_files is None:
                self._module_files = {}
                for found in sorted(self.modules_dir.rglob("*.ko")):
                    self._module_files.setdefault(found.stem.replace("-", "_"), found)
            path = self._module_files.get(name.replace("-", "_"))
            if path is not None:
                image = ElfImage(path, self.arch)
            else:
                self._warn_once(f"module {name}: no {name}.ko under {self.modules_dir}")
        else:
            self._warn_once(f"module {name}: no --modules directory given")
        self._modules[name] = image
        return image

    def resolve(self, query: FrameQuery) -> Placement | None:
        """The ELF file, the link-time address to look up for one frame (pc-1 for return
        addresses) and the section for module code outside the first code section, or None
        when the frame cannot be placed."""
        image: ElfImage | None = self.vmlinux
        address: int | None = None
        section: int | None = None
        shadowed = False
        if query.function:
            if query.module:
                image = self._module(query.module)
            if image is None:
                return None
            symbol = image.lookup(query.function, query.offset, query.size)
            if symbol is not None:
                if image.relocatable:
                    section, shadowed = symbol.section, image.shadowed(symbol)
                address = symbol.address + (query.offset or 0)
        if address is None and query.address is not None and not query.module:
            address = query.address - self.kernel_offset
        if address is None or image is None:
            return None
        # A return address points after the call; its line is the call's only at pc-1. An
        # offset of 0 is a function's first byte, never a return address inside it.
        if query.is_return_address and (query.offset is None or query.offset > 0) and address > 0:
            address -= 1
        if not 0 <= address < 1 << image.address_bits:
            return None  # a 64-bit address in a 32-bit log, or an offset larger than the address
        return image, address, section, shadowed

    def symbolize(self, queries: Sequence[FrameQuery]) -> list[list[SourceLocation]]:
        """One inline chain per query (innermost first; empty when unknown), all addresses
        through the backend in one batch."""
        placed = [self.resolve(q) for q in queries]
        plain = {i: p for i, p in enumerate(placed) if p is not None and not p[3]}
        shadowed = {i: p for i, p in enumerate(placed) if p is not None and p[3]}
        results: list[list[SourceLocation]] = [[] for _ in placed]
        for i, answer in zip(plain, self._lookup(list(plain.values())), strict=True):
            results[i] = answer
        if shadowed:
            for i, answer in zip(shadowed, self._lookup_shadowed(list(shadowed.values())), strict=True):
                results[i] = answer
        return results

    def _lookup(self, placements: list[Placement]) -> list[list[SourceLocation]]:
        if not isinstance(self._impl, PyElfTools):
            try:
                return self._impl.lookup([(p[0], p[1]) for p in placements])
            except BackendFailed as exc:
                log.warning("%s failed (%s): reading DWARF with pyelftools instead", self.backend, exc)
                self._impl.close()
                self._impl = PyElfTools()
                self.backend = self._impl.name
        assert isinstance(self._impl, PyElfTools)
        return self._impl.lookup_in_sections([(p[0], p[2], p[1]) for p in placements])

    def _lookup_shadowed(self, placements: list[Placement]) -> list[list[SourceLocation]]:
        """Module code outside the module's first code section (``.init.text``): every
        section of a ``.ko`` starts at 0, and llvm-symbolizer and addr2line without ``-j``
        would answer for ``.text``. ``addr2line -j SECTION`` can tell them apart, and so can
        pyelftools, which lays the sections out at distinct addresses itself."""
        if isinstance(self._impl, PyElfTools):
            return self._lookup(placements)
        if self._sections is False:
            exe = find_tool(ADDR2LINES.get(self.arch, ("addr2line",)), self._search_path)
            self._sections = Addr2line(exe) if exe else None
        if isinstance(self._sections, Addr2line):
            try:
                return self._sections.lookup_in_sections(
                    [(elf, elf.section_name(sec or 0), addr) for elf, addr, sec, _ in placements]
                )
            except BackendFailed as exc:
                self._warn_once(f"addr2line -j failed ({exc}); reading module DWARF with pyelftools")
                self._sections.close()
                self._sections = None
        if self._pyelftools is None:
            self._pyelftools = PyElfTools()
        return self._pyelftools.lookup_in_sections([(p[0], p[2], p[1]) for p in placements])
