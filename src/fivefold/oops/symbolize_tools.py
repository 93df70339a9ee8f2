"""Batched symbolization through one long-lived ``llvm-symbolizer`` or ``addr2line`` process.

``scripts/decode_stacktrace.sh`` starts a process per frame; that start-up (loading and
indexing the DWARF of a large vmlinux) dominates. Here a process is started once per ELF
file (``addr2line``) or once for all of them (``llvm-symbolizer``, which names the object on
each request line), kept for the life of the :class:`~fivefold.oops.symbolize.Symbolizer`,
and fed every address of a log in one write while a thread drains its answers, so that
neither side blocks on a full pipe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, Any, Protocol

from fivefold.oops.symbolize_elf import ElfImage
from fivefold.oops.symbolize_types import SourceLocation, chain

Request = tuple[ElfImage, int]

# Tried in order; Debian's `llvm` package installs the plain name, versioned ones exist too.
LLVM_SYMBOLIZERS = ("llvm-symbolizer", *(f"llvm-symbolizer-{v}" for v in range(20, 10, -1)))
# GNU addr2line only reads its host's architecture unless built multi-arch
# (binutils-multiarch), so the cross binutils come first for a foreign vmlinux.
ADDR2LINES = {
    "x86_64": ("x86_64-linux-gnu-addr2line", "addr2line"),
    "i386": ("i686-linux-gnu-addr2line", "addr2line"),
    "arm": ("arm-linux-gnueabi-addr2line", "arm-linux-gnueabihf-addr2line", "addr2line"),
    "arm64": ("aarch64-linux-gnu-addr2line", "addr2line"),
}


class BackendFailed(Exception):
    """The external tool died or answered garbage; the caller falls back to pyelftools."""


class Backend(Protocol):
    name: str

    def lookup(self, requests: Sequence[Request]) -> list[list[SourceLocation]]: ...

    def close(self) -> None: ...


def find_tool(names: Sequence[str], path: str | None = None) -> str | None:
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


class _Pipe:
    """A child process spoken to line by line over stdin/stdout."""

    def __init__(self, argv: list[str]) -> None:
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            raise BackendFailed(f"cannot start {argv[0]}: {exc}") from exc
        self.argv0 = argv[0]

    @property
    def stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def send(self, lines: Sequence[str]) -> threading.Thread:
        """Write every line from a thread; the caller reads answers meanwhile."""
        failures: list[BaseException] = []

        def write() -> None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("".join(lines))
                self.proc.stdin.flush()
            except (OSError, ValueError) as exc:  # a dead child: the reader sees EOF
                failures.append(exc)

        thread = threading.Thread(target=write, name=f"{self.argv0}-writer", daemon=True)
        thread.start()
        return thread

    def readline(self) -> str:
        line = self.stdout.readline()
        if not line:
            raise BackendFailed(f"{self.argv0} exited early (status {self.proc.poll()})")
        return line

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class LlvmSymbolizer:
    """One ``llvm-symbolizer --output-style=JSON`` for every ELF: one JSON line per request."""

    name = "llvm-symbolizer"

    def __init__(self, exe: str) -> None:
        self.exe = exe
        self._pipe: _Pipe | None = None

    def lookup(self, requests: Sequence[Request]) -> list[list[SourceLocation]]:
        if not requests:
            return []
        if self._pipe is None:
            self._pipe = _Pipe([self.exe, "--output-style=JSON", "--inlining", "--functions=linkage"])
        lines = [f'CODE "{elf.abspath}" {addr:#x}\n' for elf, addr in requests]
        writer = self._pipe.send(lines)
        try:
            return [self._parse(self._pipe.readline()) for _ in lines]
        finally:
            writer.join(timeout=5)

    @staticmethod
    def _parse(line: str) -> list[SourceLocation]:
        try:
            answer: Any = json.loads(line)
        except ValueError as exc:
            raise BackendFailed(f"llvm-symbolizer answered {line[:80]!r}") from exc
        frames = answer.get("Symbol") if isinstance(answer, dict) else None
        if not isinstance(frames, list):
            return []
        return chain(
            [
                (
                    str(f.get("FunctionName") or ""),
                    str(f.get("FileName") or ""),
                    int(f.get("Line") or 0),
                    int(f.get("Column") or 0) or None,
                )
                for f in frames
                if isinstance(f, dict)
            ]
        )

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


class Addr2line:
    """One ``addr2line -a -f -i`` per ELF file. ``-a`` echoes each address before its
    frames, which delimits the answers; an all-ones sentinel address ends a batch."""

    name = "addr2line"

    def __init__(self, exe: str) -> None:
        self.exe = exe
        self._pipes: dict[str, _Pipe] = {}

    def lookup(self, requests: Sequence[Request]) -> list[list[SourceLocation]]:
        return self.lookup_in_sections([(elf, None, address) for elf, address in requests])

    def lookup_in_sections(
        self, requests: Sequence[tuple[ElfImage, str | None, int]]
    ) -> list[list[SourceLocation]]:
        """Like :meth:`lookup`; with a section name the address is an offset into that
        section (``addr2line -j``): how a module's ``.init.text`` is told from its ``.text``,
        both of which start at 0 in a relocatable ``.ko``."""
        results: list[list[SourceLocation]] = [[] for _ in requests]
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, (elf, section, _) in enumerate(requests):
            groups.setdefault((str(elf.path), section), []).append(i)
        for (_, section), indexes in groups.items():
            elf = requests[indexes[0]][0]
            sentinel = (1 << elf.address_bits) - 1
            wanted = [i for i in indexes if requests[i][2] != sentinel]
            answers = self._batch(elf, section, [requests[i][2] for i in wanted], sentinel)
            for i, answer in zip(wanted, answers, strict=True):
                results[i] = answer
        return results

    def _batch(
        self, elf: ElfImage, section: str | None, addresses: list[int], sentinel: int
    ) -> list[list[SourceLocation]]:
        key = f"{elf.path}\0{section or ''}"
        pipe = self._pipes.get(key)
        if pipe is None:
            argv = [self.exe, "-a", "-f", "-i", "-e", str(elf.path)]
            pipe = self._pipes[key] = _Pipe(argv + (["-j", section] if section else []))
        writer = pipe.send([f"{a:#x}\n" for a in [*addresses, sentinel]])
        try:
            answers: list[list[SourceLocation]] = []
            current: list[tuple[str, str, int, int | None]] | None = None
            line = pipe.readline()
            while True:
                text = line.rstrip("\n")
                if text.startswith("0x"):
                    if current is not None:
                        answers.append(chain(current))
                    if int(text, 16) == sentinel and len(answers) == len(addresses):
                        break
                    current = []
                elif current is not None:
                    function = text
                    file, number = _split_file_line(pipe.readline().rstrip("\n"))
                    current.append((function, file, number, None))
                line = pipe.readline()
            # The sentinel's own frames ("??", "??:0") follow its echo: drain them.
            pipe.readline()
            pipe.readline()
            return answers
        finally:
            writer.join(timeout=5)

    def close(self) -> None:
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()


def _split_file_line(text: str) -> tuple[str, int]:
    """``file:line`` or ``file:line (discriminator N)``; ``??:0`` and ``??:?`` mean unknown."""
    text = text.split(" (discriminator", 1)[0]
    file, _, number = text.rpartition(":")
    return file, int(number) if number.isdigit() else 0
