"""Backtrace frames of every architecture, and the frame to blame.

Frame lines come in a few shapes, all read here:

* x86/arm64/riscv: ``[<ffffffff81234567>] ? func+0x1f/0x40 [module buildid]`` (address,
  ``? `` and module optional), arm64 adds ``(P)``/``(L)``/``(T)`` markers;
* already symbolized logs: ``func+0x1f/0x40 net/core/dev.c:123`` and
  ``inlined_func net/core/dev.c:99 [inline]``;
* arm: ``[<c010badc>] (dump_backtrace) from [<c010bc7c>] (show_stack+0x18/0x1c)``, and the
  newer ``dump_backtrace from show_stack+0x18/0x1c``: the callee, then its caller.

Section markers (``Call Trace:``, ``<IRQ>``, ``Allocated by task 1:``, ``Exception stack``)
tell which stack a frame belongs to. The frame to blame is the one the title names, or else
the first reliable frame of the task stack outside the generic machinery of
:data:`fivefold.oops.formats.SKIP_FRAMES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from fivefold.oops import rules as R
from fivefold.oops.crash import Frame

_FRAME = re.compile(
    r"^\s*(?:\[\s*<?(?:0x)?(?P<addr>[0-9a-f]+)>?\]\s*)?(?P<q>\?\s+)?"
    r"(?P<func>[A-Za-z_][A-Za-z0-9_.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?:\s+\[(?P<mod>[A-Za-z0-9_\-]+)(?:\s+(?P<build>[0-9a-f]+))?\])?"
    r"(?:\s+\((?P<mark>[PLT])\))?"
    r"(?:\s+(?P<file>[A-Za-z0-9_\-./]+\.[a-zA-Z]+:\d+))?"
    r"(?P<inline>\s+\[inline\])?"
    r"(?P<unreliable>\s+\(unreliable\))?\s*$",
    re.ASCII,
)
# "func file.c:12 [inline]": what symbolization prints for inlined callees (no offset).
_INLINE = re.compile(
    r"^\s*(?P<func>[A-Za-z_][A-Za-z0-9_.]*)\s+(?P<file>[A-Za-z0-9_\-./]+\.[a-zA-Z]+:\d+)\s+\[inline\]\s*$",
    re.ASCII,
)
_ARM = re.compile(
    r"^\s*(?:\[<(?P<pc>[0-9a-f]+)>\]\s*\()?(?P<func>[A-Za-z_][A-Za-z0-9_.]*)"
    r"(?:\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+))?\)?(?:\s+\[(?P<mod>[A-Za-z0-9_\-]+)\])?"
    r" from (?:\[<(?P<lr>[0-9a-f]+)>\]\s*\()?(?P<caller>[A-Za-z_][A-Za-z0-9_.]*)"
    r"\+0x(?P<coff>[0-9a-f]+)/0x(?P<csize>[0-9a-f]+)\)?(?:\s+\[(?P<cmod>[A-Za-z0-9_\-]+)\])?",
    re.ASCII,
)
_RAW_ADDRESS = re.compile(r"^\s*\[<(?:0x)?(?P<addr>[0-9a-f]{8,16})>\]\s*(?:\?\s*)?(?:0x[0-9a-f]+)?\s*$")

#: Lines that open a new stack section, and the section's name (first matching group wins).
SECTIONS: tuple[tuple[str, str], ...] = (
    (r"Call [Tt]race:|^Backtrace:|[^k] backtrace(?: \(crc [0-9a-f]*\))?:|^\s*<TASK>", "task"),
    (r"^\s*<IRQ>|^\s*<SOFTIRQ>", "irq"),
    (r"^\s*</IRQ>|^\s*</SOFTIRQ>|^\s*</NMI>", "task"),
    (r"^\s*<NMI>", "nmi"),
    (r"Exception stack\(|^\s*--- interrupt:", "exception"),
    (r"Allocated by task \d+:|^Allocated:|page last allocated", "alloc"),
    (r"Freed by task \d+:|^Freed:|page last free", "free"),
    (r"Last potentially related work creation:|Second to last potentially related", "aux"),
    (r"Uninit was (?:created|stored to memory) at|Local variable .* created at:", "origin"),
    (r"^\s*</TASK>", "end"),
)
_SECTION = re.compile("|".join(f"(?P<s{i}>{pattern})" for i, (pattern, _) in enumerate(SECTIONS)))
_SECTION_NAMES = {f"s{i}": name for i, (_, name) in enumerate(SECTIONS)}


def _maybe_section(line: str) -> bool:
    """A cheap test that rules out most lines before the section regex runs."""
    return (
        line.endswith(":")
        or line.lstrip()[:1] == "<"
        or "Exception stack" in line
        or "--- interrupt" in line
        or "page last" in line
    )


def _int(value: str | None) -> int | None:
    return int(value, 16) if value else None


def parse_frames(lines: Iterable[str]) -> list[Frame]:
    """Every frame in ``lines`` (console prefixes already stripped), in print order."""
    frames: list[Frame] = []
    section = "task"
    seen_trace = False
    for line in lines:
        has_offset = "+0x" in line
        # Section markers never carry an offset (but powerpc's "--- interrupt: ... at f+0x").
        if (not has_offset or "--- interrupt" in line) and _maybe_section(line):
            marker = _SECTION.search(line)
            if marker is not None and marker.lastgroup is not None:
                section = _SECTION_NAMES[marker.lastgroup]
                seen_trace = True
        if not has_offset and " from " not in line:
            inline = _INLINE.match(line) if "[inline]" in line else None
            if inline is not None:
                frames.append(Frame(function=inline["func"], inline=True, file=inline["file"], stack=section))
            elif seen_trace and "[<" in line:
                raw = _RAW_ADDRESS.match(line)
                if raw is not None:
                    frames.append(
                        Frame(
                            function=None,
                            address=int(raw["addr"], 16),
                            stack=section,
                            reliable="?" not in line,
                        )
                    )
            continue
        if " from " in line:
            arm = _ARM.match(line)
            if arm is not None:
                if not frames or frames[-1].function != arm["func"]:
                    frames.append(
                        Frame(
                            function=arm["func"],
                            offset=_int(arm["off"]),
                            size=_int(arm["size"]),
                            module=arm["mod"],
                            address=_int(arm["pc"]),
                            stack=section,
                        )
                    )
                frames.append(
                    Frame(
                        function=arm["caller"],
                        offset=_int(arm["coff"]),
                        size=_int(arm["csize"]),
                        module=arm["cmod"],
                        address=_int(arm["lr"]),
                        stack=section,
                    )
                )
                continue
        match = _FRAME.match(line)
        if match is None:
            continue
        frames.append(
            Frame(
                function=match["func"],
                offset=int(match["off"], 16),
                size=int(match["size"], 16),
                module=match["mod"],
                build_id=match["build"],
                address=_int(match["addr"]),
                reliable=not (match["q"] or match["unreliable"]),
                inline=bool(match["inline"]),
                file=match["file"],
                stack=section,
            )
        )
    return frames


@lru_cache(maxsize=16384)
def _canonical(name: str) -> str:
    """``__do_sys_foo.cold.12`` and ``sys_foo`` both name ``foo``'s frame."""
    base = name.split(".")[0]
    best = base
    for prefix in R.STRIP_FRAME_PREFIXES:
        if base.startswith(prefix) and len(base) - len(prefix) < len(best):
            best = base[len(prefix) :]
    return best


def blame(frames: list[Frame], title: str) -> Frame | None:
    """The frame the crash is blamed on: the one the title names, else the first non-generic one."""
    named = title.rsplit(" in ", 1)[1].strip() if " in " in title else None
    if named and named != "corrupted":
        named = named.split("/")[0]
        matching = [
            f for f in frames if f.function and (f.function == named or _canonical(f.function) == named)
        ]
        if matching:
            # A "? " frame is stale stack content; the same function printed reliably is the call.
            return next((f for f in matching if f.reliable), matching[0])
    for frame in frames:
        if (
            frame.function is None
            or not frame.reliable
            or frame.stack not in ("pc", "task", "irq", "exception")
        ):
            continue
        if R.SKIP_RE.search(frame.function) is None:
            return frame
    return next((f for f in frames if f.function and f.reliable), None)
