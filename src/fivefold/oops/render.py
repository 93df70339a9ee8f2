"""Crash reports as text (terminal), Markdown (tickets, mail) and JSON (tools).

The JSON document is versioned (:data:`fivefold.oops.crash.SCHEMA_VERSION`); its fields are
those of :class:`fivefold.oops.crash.Crash` and are documented in ``docs/oops.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fivefold.oops.crash import SCHEMA_VERSION, Crash, Frame, Registers

SCHEMA_NAME = "fivefold.oops.report"
MAX_FRAMES = 64


@dataclass
class LogResult:
    """The crashes of one log, and how it was symbolized (if at all)."""

    name: str
    crashes: list[Crash]
    size: int = 0
    symbolizer: str | None = None


def to_document(results: Sequence[LogResult]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "logs": [
            {
                "log": r.name,
                "size": r.size,
                "symbolizer": r.symbolizer,
                "crashes": [c.to_dict() for c in r.crashes],
            }
            for r in results
        ],
    }


def _flags(crash: Crash) -> str:
    flags = ["fatal" if crash.fatal else "non-fatal"]
    if crash.panicked:
        flags.append("panicked")
    if crash.corrupted:
        flags.append(f"corrupted: {crash.corrupted_reason}")
    if crash.suppressed:
        flags.append("suppressed")
    return ", ".join(flags)


def _source(frame: Frame) -> str:
    if frame.source:
        outer = frame.source[-1]
        text = f"{outer.file}:{outer.line}"
        inlined = [f"{s.function} {s.file.rsplit('/', 1)[-1]}:{s.line}" for s in frame.source[:-1]]
        return text + (f" (inlined: {'; '.join(inlined)})" if inlined else "")
    return frame.file or ""


def _frame_line(index: int, frame: Frame) -> str:
    mark = "" if frame.reliable else "? "
    where = _source(frame)
    address = f"[<{frame.address:x}>] " if frame.address is not None else ""
    stack = f" <{frame.stack}>" if frame.stack not in ("task", "pc") else ""
    inline = " [inline]" if frame.inline else ""
    text = f"#{index:<3} {address}{mark}{frame.label()}{inline}{stack}"
    return f"{text}  {where}" if where else text


def _registers(regs: Registers) -> list[str]:
    lines = []
    if regs.pc_symbol:
        seg = f"{regs.segment}:" if regs.segment else ""
        lines.append(f"pc {seg}{regs.pc_symbol}" + (f"   lr {regs.lr_symbol}" if regs.lr_symbol else ""))
    width = 16 if regs.arch in ("x86_64", "arm64", "riscv64") else 8
    items = [f"{name:>6}: {value:0{width}x}" for name, value in regs.values.items()]
    per_line = 3 if width == 16 else 4
    for start in range(0, len(items), per_line):
        lines.append("  ".join(items[start : start + per_line]))
    return lines


def _context(crash: Crash) -> list[str]:
    ctx = crash.context
    parts = []
    if ctx.cpu is not None:
        parts.append(f"CPU {ctx.cpu}")
    if ctx.pid is not None:
        parts.append(f"PID {ctx.pid}")
    if ctx.comm:
        parts.append(f"comm {ctx.comm}")
    parts.append(f"tainted {ctx.tainted}" if ctx.tainted else "not tainted")
    if ctx.release:
        parts.append(f"kernel {ctx.release}")
    lines = [" · ".join(parts)]
    if ctx.hardware:
        lines.append(f"hardware: {ctx.hardware}")
    if ctx.modules:
        lines.append(f"modules: {' '.join(ctx.modules)}")
    return lines


def _sections(crash: Crash) -> list[tuple[str, list[str]]]:
    """(heading, lines) pairs shared by the text and Markdown renderings."""
    where = f"bytes {crash.start}-{crash.end}" + (f" of {crash.source}" if crash.source else "")
    summary = [
        f"type: {crash.type} · kind: {crash.kind} · {_flags(crash)}",
        f"arch: {crash.arch or 'unknown'} · {where}",
        f"header: {crash.header}",
        *_context(crash),
    ]
    if crash.alt_titles:
        summary.append(f"also known as: {' | '.join(crash.alt_titles[:4])}")
    sections: list[tuple[str, list[str]]] = [("Summary", summary)]
    if crash.blamed is not None:
        blamed = [crash.blamed.label()]
        src = _source(crash.blamed)
        if src:
            blamed.append(src)
        if crash.guilty_file:
            blamed.append(f"guilty file: {crash.guilty_file}")
        sections.append(("Blamed frame", blamed))
    elif crash.guilty_file:
        sections.append(("Blamed frame", [f"guilty file: {crash.guilty_file}"]))
    if crash.registers is not None:
        sections.append((f"Registers ({crash.registers.arch})", _registers(crash.registers)))
    if crash.frames:
        frames = [_frame_line(i, f) for i, f in enumerate(crash.frames[:MAX_FRAMES])]
        if len(crash.frames) > MAX_FRAMES:
            frames.append(f"... {len(crash.frames) - MAX_FRAMES} more frames")
        sections.append(("Backtrace", frames))
    if crash.code is not None and hasattr(crash.code, "render"):
        sections.append(("Code", str(crash.code.render()).split("\n")))
    elif crash.code_line:
        sections.append(("Code", [crash.code_line]))
    return sections


def render_text(results: Sequence[LogResult]) -> str:
    out: list[str] = []
    for result in results:
        if not result.crashes:
            out.append(f"{result.name}: no crash found")
            continue
        for number, crash in enumerate(result.crashes, 1):
            head = f"{result.name}: crash {number}/{len(result.crashes)}: {crash.title}"
            out += [head, "=" * min(len(head), 100)]
            for heading, lines in _sections(crash):
                if heading == "Summary":
                    out += lines
                    continue
                out += ["", f"{heading}:"] + [f"  {line}" for line in lines]
            if result.symbolizer:
                out += ["", f"(symbolized with {result.symbolizer})"]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_markdown(results: Sequence[LogResult]) -> str:
    out: list[str] = []
    for result in results:
        out.append(f"# {result.name}")
        if not result.crashes:
            out += ["", "No crash found.", ""]
            continue
        for crash in result.crashes:
            out += ["", f"## {crash.title}", ""]
            for heading, lines in _sections(crash):
                if heading == "Summary":
                    out += [f"- {line}" for line in lines]
                    continue
                out += ["", f"### {heading}", "", "```", *lines, "```"]
        if result.symbolizer:
            out += ["", f"_Symbolized with {result.symbolizer}._"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
