"""Everything a report says besides its title: context, registers, frames, Code:, guilty file.

Reads the report lines :func:`fivefold.oops.parse.cut_report` collected (console prefixes
stripped, other tasks' lines dropped, ``? `` frames kept) and fills the :class:`Crash`.
"""

from __future__ import annotations

import posixpath
import re

from fivefold.oops.crash import Context, Crash, Frame, Registers
from fivefold.oops.lines import display
from fivefold.oops.stack import blame, parse_frames

_CPU_LINE = re.compile(
    r"CPU: (?P<cpu>\d+)(?: UID: \d+)? PID: (?P<pid>\d+) Comm: (?P<comm>.*?) +"
    r"(?:Not tainted|Tainted: (?P<taint>[A-Z ]*?)) +(?P<release>\d\S*|syzkaller)(?: #|$| \S)",
    re.M,
)
_WARN_CPU = re.compile(r"WARNING: CPU: (?P<cpu>\d+) PID: (?P<pid>\d+) at ")
_WARN_NEW = re.compile(r"WARNING: .* CPU#(?P<cpu>\d+): (?P<comm>.+?)/(?P<pid>\d+)\s*$", re.M)
_TASK_LINE = re.compile(r"by task (?P<comm>.+?)/(?P<pid>\d+)\b")
_HARDWARE = re.compile(r"Hardware name: (.*)")
_MODULES = re.compile(r"Modules linked in:(.*)")
_KERNEL_OFFSET = re.compile(r"Kernel Offset: 0x([0-9a-f]+) from 0x([0-9a-f]+)")
# Units must be separated by blanks: "(?:hex{2,8}\s*)+" backtracks exponentially on long runs.
_CODE = re.compile(r"(?:^|\W)Code:\s+((?:[<(]?[0-9A-Fa-f]{2,8}[>)]?(?:\s+|$))+)$")
_X86_PC = re.compile(
    r"^(?P<name>RIP|EIP|IP): (?:(?P<seg>[0-9a-f]{4}):)?(?:\[<(?P<addr>[0-9a-f]+)>\] )?"
    r"(?P<sym>\S+(?: \[[\w-]+\])?)?",
    re.M,
)
_X86_REG = re.compile(
    r"\b(?P<name>[RE]?(?:AX|BX|CX|DX|SI|DI|BP|SP)|R\d{1,2}|EFLAGS|ORIG_RAX|CR[0-4]|FS|GS|knlGS|RIP)"
    r": ?(?:[0-9a-f]{4}:)?(?P<value>[0-9a-f]{8,16})\b"
)
_ARM_REG = re.compile(r"\b(?P<name>r\d{1,2}|fp|ip|sp|lr|pc|psr|cpsr)\s*:\s+\[?<?(?P<value>[0-9a-f]{8})>?\]?")
_ARM64_REG = re.compile(r"\b(?P<name>x\d{1,2}|sp|pc|lr|pstate)\s*:\s+(?P<value>[0-9a-f]{8,16})\b")
_ARM64_SYM = re.compile(
    r"^(?P<name>pc|lr) : (?P<sym>[A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[\w-]+\])?)", re.M
)
_ARM_SYM = re.compile(r"^(?P<name>PC|LR) is at (?P<sym>\S+)", re.M)
_RISCV_REG = re.compile(
    r"\b(?P<name>epc|ra|sp|gp|tp|t\d|s\d{1,2}|a\d|status|badaddr|cause)\s*:\s+(?P<value>[0-9a-f]{16})\b"
)
_FILENAME = re.compile(r"([a-zA-Z0-9_\-./]*[a-zA-Z0-9_\-]+\.(?:c|h)):[0-9]+")
# Lock-state lines name where a lock was taken, not where the bug is.
_GUILTY_LINE_IGNORE = re.compile(
    r"(hardirqs|softirqs)\s+last\s+(enabled|disabled)|^Register r\d+ information"
    r"|^\s*#\d+:\s+(?:[0-9a-f]+\s+)?\("
)
_DEEPER = re.compile(r"^/[a-zA-Z0-9_\-./]+/[a-zA-Z0-9_\-]+\.(c|h)$")

#: Files that report, lock, allocate or dispatch: a crash "in" them is almost never their bug.
GUILTY_FILE_IGNORES = re.compile(
    "|".join(
        (
            r".*\.h",
            r"^lib/.*",
            r"^virt/lib/.*",
            r"^mm/kasan/.*",
            r"^mm/kmsan/.*",
            r"^kernel/kcov.c",
            r"^mm/sl.b.c",
            r"^mm/filemap.c",
            r"^mm/folio-compat.c",
            r"^mm/truncate.c",
            r"^mm/memory.c",
            r"^mm/percpu.*",
            r"^mm/vmalloc.c",
            r"^mm/page_alloc.c",
            r"^mm/mempool.c",
            r"^mm/util.c",
            r"^kernel/rcu/.*",
            r"^arch/.*/kernel/traps.c",
            r"^arch/.*/kernel/unwind.*.c",
            r"^arch/.*/mm/fault.c",
            r"^arch/.*/mm/physaddr.c",
            r"^arch/.*/kernel/stacktrace.c",
            r"^arch/.*/kernel/apic/apic.c",
            r"^arch/arm64/kernel/entry.*.c",
            r"^arch/arm64/kernel/process\.c",
            r"^kernel/locking/.*",
            r"^kernel/panic.c",
            r"^kernel/printk/printk.*.c",
            r"^kernel/softirq.c",
            r"^kernel/kthread.c",
            r"^kernel/sched/.*.c",
            r"^kernel/stacktrace.c",
            r"^kernel/time/timer.c",
            r"^kernel/workqueue.c",
            r"^net/core/dev.c",
            r"^net/core/sock.c",
            r"^net/core/skbuff.c",
            r"^fs/proc/generic.c",
            r"^trusty/",
            r"^drivers/usb/core/urb.c",
            r"^arch/.*/lib/crc.*",
        )
    )
)

#: What the report says happened to the task: any of these means it was killed, not warned.
_FATAL_MARKERS = (
    "Oops",
    "Internal error:",
    "invalid opcode:",
    "general protection fault",
    "kernel BUG at",
    "Kernel BUG",
    "nable to handle kernel",
    "divide error",
    "double fault",
    "stack segment:",
    "Unhandled fault",
    "Alignment trap:",
)


#: Context and registers are printed near the top; later dumps belong to other CPUs or tasks.
HEAD_LINES = 300


_ARM64_HINT = re.compile(r"\bx29\s*:|\bpstate\s*:|\bel1h_64_|ESR = 0x")
_ARM_HINT = re.compile(r"\bpsr\s*:|\br10\s*:\s+[0-9a-f]{8}\b| PC is at |\(dump_backtrace\) from")


def detect_arch(lines: list[str]) -> str | None:
    text = "\n".join(lines[:HEAD_LINES])
    if "RIP: " in text or "RAX: " in text:
        return "x86_64"
    if "EIP: " in text or "EAX: " in text:
        return "i386"
    arm64 = "x29" in text or "pstate" in text or "el1h_64_" in text or "ESR = " in text
    if arm64 and _ARM64_HINT.search(text):
        return "arm64"
    if ("psr" in text or "r10" in text or "PC is at" in text or ") from " in text) and _ARM_HINT.search(text):
        return "arm"
    if "epc :" in text or "badaddr:" in text:
        return "riscv64"
    if "NIP:" in text or "MSR:" in text:
        return "powerpc"
    return None


def extract_context(head: str, tail: str) -> Context:
    """CPU, task, taint, release, hardware and modules from the report's first lines."""
    ctx = Context()
    match = _CPU_LINE.search(head)
    if match is not None:
        ctx.cpu, ctx.pid = int(match["cpu"]), int(match["pid"])
        ctx.comm = display(match["comm"])
        ctx.tainted = " ".join(match["taint"].split()) if match["taint"] else None
        ctx.release = match["release"]
    else:
        warn = _WARN_NEW.search(head) or _WARN_CPU.search(head)
        if warn is not None:
            ctx.cpu, ctx.pid = int(warn["cpu"]), int(warn["pid"])
            if "comm" in warn.groupdict():
                ctx.comm = display(warn["comm"])
    hw = _HARDWARE.search(head)
    if hw is not None:
        ctx.hardware = display(hw.group(1).strip())
    mods = _MODULES.search(head)
    if mods is not None:
        ctx.modules = [m.split("(")[0] for m in mods.group(1).split() if m.split("(")[0].strip("[]")]
    offset = _KERNEL_OFFSET.search(tail)
    if offset is not None:
        ctx.kernel_offset = int(offset.group(1), 16)
    return ctx


_REG_RES: dict[str, re.Pattern[str]] = {
    "x86_64": _X86_REG,
    "i386": _X86_REG,
    "arm64": _ARM64_REG,
    "arm": _ARM_REG,
    "riscv64": _RISCV_REG,
}


def extract_registers(head: str, arch: str | None, dump: str | None = None) -> Registers | None:
    """The first register dump of the report (later dumps belong to other stacks)."""
    pattern = _REG_RES.get(arch or "")
    if pattern is None:
        return None
    regs = Registers(arch=arch)
    if arch in ("x86_64", "i386"):
        pc = _X86_PC.search(head)
        if pc is not None:
            regs.segment = pc["seg"]
            if pc["sym"] and "+0x" in pc["sym"]:
                regs.pc_symbol = pc["sym"]
            if pc["addr"]:
                regs.values[pc["name"].lower()] = int(pc["addr"], 16)
    else:
        sym_re = _ARM64_SYM if arch == "arm64" else _ARM_SYM
        for sym in sym_re.finditer(head):
            attr = f"{sym['name'].lower()}_symbol"
            if getattr(regs, attr) is None:
                setattr(regs, attr, sym["sym"])
    for pair in pattern.finditer(head if dump is None else dump):
        name = pair["name"].lower()
        if name == "rip" and regs.pc_symbol is not None and name in regs.values:
            continue
        regs.values.setdefault(name, int(pair["value"], 16))
    return regs if regs.values or regs.pc_symbol else None


def _pc_frame(regs: Registers | None) -> Frame | None:
    if regs is None or not regs.pc_symbol:
        return None
    match = re.match(r"([A-Za-z_][\w.]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)(?: \[(\w+)\])?", regs.pc_symbol)
    if match is None:
        return None
    return Frame(
        function=match.group(1),
        offset=int(match.group(2), 16),
        size=int(match.group(3), 16),
        module=match.group(4),
        address=regs.pc,
        stack="pc",
    )


def guilty_file(title: str, report: str) -> str | None:
    """The source file to blame in a symbolized report (syzkaller's rules)."""
    if title.startswith("INFO: rcu detected stall"):
        for marker in ("apic_timer_interrupt+0x", "el1h_64_irq+0x", "Exception stack"):
            pos = report.find(marker)
            if pos != -1:
                found = _guilty_impl(report[pos:])
                if found:
                    return found
    return _guilty_impl(report)


def _guilty_impl(report: str) -> str | None:
    guilty = ""
    lines = report.split("\n")
    rest = 0
    for index, line in enumerate(lines):
        match = _FILENAME.search(line) if ".c:" in line or ".h:" in line else None
        if match is None:
            continue
        file = match.group(1)
        if not guilty:
            guilty = file
        if GUILTY_FILE_IGNORES.match(file) or _GUILTY_LINE_IGNORE.search(line):
            continue
        guilty = posixpath.normpath(file)
        rest = index + 1
        break
    else:
        return guilty or None
    deepest = posixpath.dirname(guilty)
    for line in lines[rest:]:
        match = _FILENAME.search(line) if ".c:" in line or ".h:" in line else None
        if match is None:
            continue
        file = match.group(1)
        if GUILTY_FILE_IGNORES.match(file) or _GUILTY_LINE_IGNORE.search(line):
            continue
        clean = posixpath.normpath(file)
        if clean.startswith(deepest) and _DEEPER.match(clean[len(deepest) :]):
            guilty, deepest = clean, posixpath.dirname(clean)
    return guilty or None


def fill(crash: Crash, lines: list[str], tail: str) -> None:
    """Completes ``crash`` from its report ``lines``; ``tail`` is the log after the report start."""
    crash.header = display(lines[0]) if lines else ""
    crash.arch = detect_arch(lines)
    head = "\n".join(lines[:HEAD_LINES])
    crash.context = extract_context(head, tail)
    # Register dumps are short "name: value" lines; the register regexes only see those.
    dump = "\n".join(line for line in lines[:HEAD_LINES] if len(line) < 200 and ":" in line[:14])
    crash.registers = extract_registers(head, crash.arch, dump)
    frames = parse_frames(lines)
    pc = _pc_frame(crash.registers)
    if pc is not None:
        first = frames[0] if frames else None
        if first is not None and (first.function, first.offset) == (pc.function, pc.offset):
            # arm64 and riscv print the faulting pc again as the first frame of the trace.
            first.stack = "pc"
            first.address = first.address if first.address is not None else pc.address
        else:
            frames.insert(0, pc)
    crash.frames = frames
    crash.blamed = blame(frames, crash.title)
    for line in lines:
        code = _CODE.search(line) if "Code:" in line else None
        if code is not None and ("(" in line or "<" in line):
            crash.code_line = line.strip()
            break
    text = "\n".join(lines)
    crash.fatal = crash.kind == "PANIC" or any(marker in text for marker in _FATAL_MARKERS)
    # syzkaller's rule reads the whole report, past the next header (inline KASAN headers
    # repeat the "BUG:" line once per inlined frame).
    crash.guilty_file = guilty_file(crash.title, crash.report or text)
