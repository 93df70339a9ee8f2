"""The declarative table of Linux crash formats.

Every crash kind is data: a cheap literal ``header`` that marks a line as the start of a
report, the header's false positives, and an ordered list of :class:`Format` entries that
turn the report text into a title. The titles follow syzkaller's ``pkg/report`` conventions
(the de facto standard for deduplicating kernel crashes), so that buckets made here line up
with syzbot's. Matching logic lives in :mod:`fivefold.oops.parse`; nothing here executes.

Template syntax in regular expressions: ``{{PC}}`` a ``[<ffffffff81234567>]`` address,
``{{FUNC}}`` a function name captured before ``+`` or ``.``, ``{{SRC}}`` ``file.c:123``,
``{{ADDR}}`` a ``0x`` hex number. Title templates use ``{0}``, ``{1}``... for the regex
groups in order, then the frames extracted by the stack parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Marks the point in :attr:`Stack.parts` where a whole stack trace is read.
STACK = "<stack trace>"


def compile_template(pattern: str) -> re.Pattern[str]:
    pattern = pattern.replace("{{ADDR}}", r"0x[0-9a-f]+")
    pattern = pattern.replace("{{PC}}", r"\[\<?(?:0x)?[0-9a-f]+\>?\]")
    pattern = pattern.replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
    pattern = pattern.replace("{{SRC}}", r"([a-zA-Z0-9\-_/.]+\.[a-z]+:[0-9]+)")
    pattern = pattern.replace("[[:space:]]", r"\s").replace("[[:xdigit:]]", "[0-9a-fA-F]")
    return re.compile(pattern, re.ASCII)


@dataclass(frozen=True)
class Stack:
    """How the frame that names the crash is found in the report."""

    parts: tuple[str, ...]
    parts2: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    extractor: str | None = None  # "stall" or "hang": see parse.EXTRACTORS


@dataclass(frozen=True)
class Format:
    title: str
    fmt: str
    report: str | None = None
    alt: tuple[str, ...] = ()
    stack: Stack | None = None
    no_stack_trace: bool = False
    corrupted: bool = False


@dataclass(frozen=True)
class Oops:
    header: str
    formats: tuple[Format, ...]
    suppressions: tuple[str, ...] = ()
    kind: str = "BUG"  # BUG, WARNING, INFO, PANIC: what the header says about severity


RIP_FRAME = (
    r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+"
    r"|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))"
)
CALL_TRACE = r"(?:Call (?:T|t)race:)|(?:Backtrace:)"


def _rip_stack(*, skip: tuple[str, ...] = (), extractor: str | None = None) -> Stack:
    return Stack(parts=(RIP_FRAME, CALL_TRACE, STACK), skip=skip, extractor=extractor)


def _trace_stack(*, skip: tuple[str, ...] = (), extractor: str | None = None) -> Stack:
    return Stack(parts=(CALL_TRACE, STACK), skip=skip, extractor=extractor)


def _warning_stack(*skip: str) -> Stack:
    # Newer kernels trap on WARN and print the RIP line first; older ones print only the stack.
    return Stack(
        parts=("(?:" + RIP_FRAME + "|--- interrupt: [0-9]+ at {{FUNC}})", STACK),
        parts2=(CALL_TRACE, STACK),
        skip=skip,
    )


_LOCK_AT = r"(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"
_USB = ("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg")

BUG = Oops(
    "BUG:",
    (
        Format(
            title="BUG: KASAN:",
            report=r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?"
                   r".*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)",
            fmt="KASAN: {0} {2} in {3}",
            alt=("bad-access in {3}",),
            stack=Stack(
                parts=(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}", CALL_TRACE, STACK),
                skip=("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"),
            ),
        ),
        Format(
            title="BUG: KASAN:",
            report=r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}",
            fmt="KASAN: invalid-free in {1}",
            alt=("invalid-free in {1}",),
            stack=Stack(
                parts=(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}",
                       CALL_TRACE, STACK),
                skip=("slab_", "kfree", "vunmap", "vfree"),
            ),
        ),
        Format(title=r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)",
               fmt="KASAN: {0} {1}"),
        Format(title="BUG: KASAN: (.*)", fmt="KASAN: {0}", corrupted=True),
        Format(
            title="BUG: KMSAN: kernel-usb-infoleak",
            report="BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}",
            fmt="KMSAN: kernel-usb-infoleak in {1}",
            alt=("KMSAN origin in {2}",),
            stack=Stack(parts=(STACK, "(Local variable .* created at:|Uninit was created at:)", STACK),
                        skip=("alloc_skb", *_USB)),
            no_stack_trace=True,
        ),
        Format(
            title="BUG: KMSAN:",
            report=r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}",
            fmt="KMSAN: {0} in {2}",
            alt=("bad-access in {2}",),
            stack=Stack(
                parts=(STACK, "(Local variable .* created at:|Uninit was created at:)", STACK),
                skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$",
                      "^(?:crypto|cipher|drbg|rng)_"),
            ),
            no_stack_trace=True,
        ),
        Format(title="BUG: KCSAN: data-race", report="BUG: KCSAN: (.*)", fmt="KCSAN: {0}",
               no_stack_trace=True),
        Format(title="BUG: KCSAN:", report="BUG: KCSAN: (.*)", fmt="KCSAN: {0}", no_stack_trace=True),
        Format(
            title="BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}",
            fmt="KFENCE: {0} {1} in {3}",
            alt=("bad-access in {3}",),
            stack=Stack(parts=(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", STACK)),
        ),
        Format(
            title="BUG: KFENCE: invalid free in {{FUNC}}",
            fmt="KFENCE: invalid free in {1}",
            alt=("invalid-free in {1}",),
            no_stack_trace=True,
            stack=Stack(parts=(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", STACK)),
        ),
        Format(
            title="BUG: KFENCE: invalid (read|write) in {{FUNC}}",
            fmt="KFENCE: invalid {0} in {2}",
            alt=("bad-access in {2}",),
            stack=Stack(parts=(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", STACK)),
        ),
        Format(
            title="BUG: KFENCE: memory corruption in {{FUNC}}",
            fmt="KFENCE: memory corruption in {1}",
            no_stack_trace=True,
            stack=Stack(parts=(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", STACK)),
        ),
        Format(
            title="BUG: (?:unable to handle kernel paging request|unable to handle page fault for address"
                  "|Unable to handle kernel data access)",
            fmt="BUG: unable to handle kernel paging request in {0}",
            alt=("bad-access in {0}",),
            stack=_rip_stack(),
        ),
        Format(
            title="BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference"
                  "|Kernel NULL pointer dereference)",
            fmt="BUG: unable to handle kernel NULL pointer dereference in {0}",
            alt=("bad-access in {0}",),
            stack=_rip_stack(),
        ),
        # The kernel prints this header in two printk calls; the second part may be lost.
        Format(title="BUG: (?:unable to handle kernel|Unable to handle kernel)",
               fmt="BUG: unable to handle kernel", corrupted=True),
        Format(
            title="BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion"
                  "|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
            fmt="BUG: {0} {1} in {2}",
            stack=_trace_stack(skip=("spin_", "_lock", "_unlock")),
        ),
        Format(title="BUG: soft lockup", fmt="BUG: soft lockup in {0}", alt=("stall in {0}",),
               stack=_rip_stack(extractor="stall")),
        Format(title="BUG: .*still has locks held!",
               report="BUG: .*still has locks held!(?:.*\\n)+?.*{{PC}} +{{FUNC}}",
               fmt="BUG: still has locks held in {0}"),
        Format(title="BUG: scheduling while atomic", fmt="BUG: scheduling while atomic in {0}",
               stack=_trace_stack(skip=("schedule",))),
        Format(title="BUG: lock held when returning to user space",
               report="BUG: lock held when returning to user space(?:.*\\n)+?"
                      ".*leaving the kernel with locks still held" + _LOCK_AT,
               fmt="BUG: lock held when returning to user space in {0}", no_stack_trace=True),
        Format(title="BUG: bad unlock balance detected!", fmt="BUG: bad unlock balance in {0}",
               stack=Stack(parts=("{{PC}} +{{FUNC}}", CALL_TRACE, STACK))),
        Format(title="BUG: held lock freed!", report="BUG: held lock freed!(?:.*\\n)+?.*{{PC}} +{{FUNC}}",
               fmt="BUG: held lock freed in {0}"),
        Format(title="BUG: Bad rss-counter state", fmt="BUG: Bad rss-counter state", no_stack_trace=True),
        Format(title="BUG: non-zero nr_ptes on freeing mm", fmt="BUG: non-zero nr_ptes on freeing mm",
               no_stack_trace=True),
        Format(title="BUG: non-zero nr_pmds on freeing mm", fmt="BUG: non-zero nr_pmds on freeing mm",
               no_stack_trace=True),
        Format(title="BUG: Dentry .* still in use",
               report=r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]",
               fmt="BUG: Dentry still in use in {0}", alt=("BUG: Dentry still in use [{0} of {1}]",)),
        Format(
            title="BUG: Bad page (state|cache)",
            fmt="BUG: Bad page {0} in {1}",
            stack=Stack(parts=("page last allocated", STACK),
                        skip=("(free|put|get|update|release)_page", "free_unref", "^_*folio",
                              "truncate_inode_pages", "page_frag_free", "alloc", "vmap", "page_owner")),
        ),
        Format(title="BUG: Bad page map", fmt="BUG: Bad page map"),
        Format(title="BUG: workqueue lockup", fmt="BUG: workqueue lockup", no_stack_trace=True),
        Format(title="BUG: sleeping function called from invalid context at (.*)",
               fmt="BUG: sleeping function called from invalid context in {1}", stack=_trace_stack()),
        Format(title=r"BUG: using ([a-z_]+)\(\) in preemptible",
               fmt="BUG: using {0}() in preemptible code in {1}",
               stack=_trace_stack(skip=("dump_stack", "preemption", "preempt", "debug_", "processor_id",
                                        "this_cpu"))),
        Format(title="BUG: workqueue leaked lock or atomic",
               report="BUG: workqueue leaked lock or atomic(?:.*\\n)+?.*last function: ([a-zA-Z0-9_]+)\\n",
               fmt="BUG: workqueue leaked lock or atomic in {0}", no_stack_trace=True),
        Format(
            title="BUG: memory leak",
            fmt="memory leak in {0}",
            stack=Stack(parts=(r"backtrace(?: \(crc [[:xdigit:]]*\))?:", STACK),
                        skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get",
                              "list_lru_init", "kasprintf", "kvasprintf", "pcpu_create", "strdup",
                              "strndup", "memdup")),
        ),
        Format(title="BUG: .*stack guard page was hit at", fmt="BUG: stack guard page was hit in {0}",
               alt=("stack-overflow in {0}",), stack=_rip_stack(extractor="stall")),
        # arm/arm64 print this lockdep splat differently; amd64's title keeps the buckets together.
        Format(title="BUG: Invalid wait context", fmt="WARNING: locking bug in {0}",
               stack=_trace_stack(skip=("lock_sock", "release_sock"))),
        Format(title=r"BUG:[[:space:]]*(?:\n|$)", fmt="BUG: corrupted", corrupted=True),
    ),
    ("ODEBUG:", "Boot_DEBUG:", "xlog_status:", "DEBUG:", "BUG: no syscalls can create resource"),
)

WARNING = Oops(
    "WARNING:",
    (
        Format(title=r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)",
               fmt="WARNING: ODEBUG bug in {0}",
               stack=_warning_stack("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap",
                                    "vfree", "__free_", "debug_check", "kobject_")),
        Format(title=r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", fmt="WARNING: bad usercopy in {0}",
               stack=_warning_stack("usercopy", "__check")),
        Format(title=r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", fmt="WARNING: kobject bug in {0}",
               stack=_warning_stack("kobject_")),
        Format(title=r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
               fmt="WARNING: proc registration bug in {0}", stack=_warning_stack("proc_")),
        Format(title=r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", fmt="WARNING: refcount bug in {0}",
               stack=_warning_stack("refcount", "kobject_")),
        Format(title=r"WARNING: .*kernel/locking/lockdep\.c.*lock_", fmt="WARNING: locking bug in {0}",
               stack=_warning_stack("lock_sock", "release_sock")),
        Format(title="WARNING: .*still has locks held!",
               report="WARNING: .*still has locks held!(?:.*\\n)+?.*at: {{FUNC}}",
               fmt="WARNING: still has locks held in {0}"),
        Format(title="WARNING: Nested lock was not taken", fmt="WARNING: nested lock was not taken in {0}",
               stack=_warning_stack()),
        Format(title="WARNING: lock held when returning to user space",
               report="WARNING: lock held when returning to user space(?:.*\\n)+?"
                      ".*leaving the kernel with locks still held" + _LOCK_AT,
               fmt="WARNING: lock held when returning to user space in {0}", no_stack_trace=True),
        Format(title=r"WARNING: .*mm/.*\.c.* k?.?malloc", fmt="WARNING: kmalloc bug in {0}",
               stack=_warning_stack("kmalloc", "krealloc", "slab", "kmem")),
        Format(title="WARNING: .*mm/vmalloc.c.*__vmalloc_node", fmt="WARNING: zero-size vmalloc in {0}",
               stack=_warning_stack()),
        Format(title="WARNING: .* usb_submit_urb", fmt="WARNING in {0}/usb_submit_urb",
               stack=_warning_stack(*_USB)),
        Format(title=r"WARNING: {{SRC}} at 0x\d+, CPU#\d+", fmt="WARNING in {1}", stack=_warning_stack()),
        Format(title="WARNING: .* at {{SRC}} {{FUNC}}", fmt="WARNING in {2}", stack=_warning_stack()),
        Format(title="WARNING: {{SRC}} at {{FUNC}}", fmt="WARNING in {2}", stack=_warning_stack()),
        Format(title=r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*", fmt="WARNING in {2}", stack=_warning_stack()),
        Format(
            title="WARNING: possible circular locking dependency detected",
            report="WARNING: possible circular locking dependency detected"
                   "(?:.*\\n)+?.*is trying to acquire lock",
            fmt="possible deadlock in {0}",
            stack=Stack(parts=("at: (?:{{PC}} +)?{{FUNC}}", "at: (?:{{PC}} +)?{{FUNC}}", STACK),
                        skip=("process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue")),
        ),
        Format(title="WARNING: possible irq lock inversion dependency detected",
               report="WARNING: possible irq lock inversion dependency detected(?:.*\\n)+?"
                      ".*just changed the state of lock" + _LOCK_AT,
               fmt="possible deadlock in {0}"),
        Format(title="WARNING: .*-safe -> .*-unsafe lock order detected", fmt="possible deadlock in {0}",
               stack=Stack(parts=("which became (?:.*) at:", STACK))),
        Format(title="WARNING: possible recursive locking detected",
               report="WARNING: possible recursive locking detected(?:.*\\n)+?.*is trying to acquire lock"
                      + _LOCK_AT,
               fmt="possible deadlock in {0}"),
        Format(title="WARNING: inconsistent lock state",
               report="WARNING: inconsistent lock state(?:.*\\n)+?.*takes" + _LOCK_AT,
               fmt="inconsistent lock state in {1}", stack=_trace_stack()),
        Format(title="WARNING: suspicious RCU usage",
               report="WARNING: suspicious RCU usage(?:.*\\n)+?.*?{{SRC}}",
               fmt="WARNING: suspicious RCU usage in {1}", stack=_trace_stack(skip=("rcu", "kmem", "slab"))),
        Format(title="WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
               fmt="WARNING: kernel stack regs has bad '{0}' value", no_stack_trace=True),
        Format(title="WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
               fmt="WARNING: kernel stack frame pointer has bad value", no_stack_trace=True),
        Format(title="WARNING: bad unlock balance detected!", fmt="WARNING: bad unlock balance in {0}",
               stack=Stack(parts=("{{PC}} +{{FUNC}}", CALL_TRACE, STACK))),
        Format(title="WARNING: held lock freed!",
               report="WARNING: held lock freed!(?:.*\\n)+?.*at:(?: {{PC}})? +{{FUNC}}",
               fmt="WARNING: held lock freed in {0}"),
        Format(title="WARNING: kernel stack regs .* has bad 'bp' value",
               fmt="WARNING: kernel stack regs has bad value", no_stack_trace=True),
        Format(title="WARNING: kernel stack frame pointer .* has bad value",
               fmt="WARNING: kernel stack regs has bad value", no_stack_trace=True),
        Format(title=r"WARNING:[[:space:]]*(?:\n|$)", fmt="WARNING: corrupted", corrupted=True),
    ),
    (
        "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
        "WARNING: workqueue cpumask: online intersect > possible intersect",
        "WARNING: [Tt]he mand mount option",
        r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
        "WARNING: Unprivileged eBPF is enabled with eIBRS",
        r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
        "WARNING: See https.* for mitigation options.",
        "WARNING: kernel not compiled with CPU_SRSO",
        r"EXT4-[Ff][Ss](?: \(.*\))?:",
        "(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
        r"XFS \(\w+\): WARNING",
    ),
    kind="WARNING",
)


def _lockdep(title: str, then: str, fmt: str = "possible deadlock in {0}") -> Format:
    """A lockdep report: its header, then the line saying what the task did, then that call site."""
    return Format(title=title, report=title + r" \](?:.*\n)+?.*" + then + r"(?:.*\n)+?.*at: {{PC}} +{{FUNC}}",
                  fmt=fmt)


INFO = Oops(
    "INFO:",
    (
        _lockdep("INFO: possible circular locking dependency detected", "is trying to acquire lock"),
        _lockdep("INFO: possible irq lock inversion dependency detected", "just changed the state of lock"),
        _lockdep("INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "is trying to acquire"),
        _lockdep("INFO: possible recursive locking detected", "is trying to acquire lock"),
        _lockdep("INFO: inconsistent lock state", "takes", fmt="inconsistent lock state in {0}"),
        Format(
            title="INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall",
            fmt="INFO: rcu detected stall in {0}",
            alt=("stall in {0}",),
            stack=Stack(parts=("apic_timer_interrupt", RIP_FRAME, STACK),
                        parts2=("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)", STACK),
                        skip=("apic_timer_interrupt", "rcu"), extractor="stall"),
        ),
        Format(title="INFO: trying to register non-static key",
               fmt="INFO: trying to register non-static key in {0}",
               stack=_trace_stack(skip=("stack", "lock", "IRQ"))),
        Format(title="INFO: suspicious RCU usage", report="INFO: suspicious RCU usage(?:.*\\n)+?.*?{{SRC}}",
               fmt="INFO: suspicious RCU usage in {1}", stack=_trace_stack(skip=("rcu", "kmem", "slab"))),
        # The task name may carry a newline (it is user controlled); newer kernels say "in I/O wait".
        Format(title="INFO: task (?:.*\\n)?.* blocked (?:in I/O wait )?for more than [0-9]+ seconds",
               fmt="INFO: task hung in {0}",
               alt=("hang in {0}",), stack=_trace_stack(extractor="hang")),
        Format(title="INFO: task .* can't die for more than .* seconds", fmt="INFO: task can't die in {0}",
               alt=("hang in {0}",), stack=_trace_stack(skip=("schedule",))),
        # Captured for corrupted old-style KASAN reports.
        Format(title="INFO: (Freed|Allocated) in (.*)", fmt="INFO: {0} in {1}", corrupted=True),
        Format(title=r"INFO:[[:space:]]*(?:\n|$)", fmt="INFO: corrupted", corrupted=True),
    ),
    (
        "INFO: lockdep is turned off",
        "INFO: Stall ended before state dump start",
        "INFO: NMI handler",
        "INFO: recovery required on readonly filesystem",
        "(handler|interrupt).*took too long",
        "INFO: sys_.* is not present in /proc/kallsyms",
        "INFO: no syscalls can create resource",
        "rmt_storage:INFO:",
        "_INFO:",
    ),
    kind="INFO",
)


def _simple(header: str, title: str, fmt: str, *, stack: Stack | None = None, alt: tuple[str, ...] = (),
            no_stack_trace: bool = False, kind: str = "BUG", suppressions: tuple[str, ...] = ()) -> Oops:
    return Oops(header, (Format(title=title, fmt=fmt, stack=stack, alt=alt, no_stack_trace=no_stack_trace),),
                suppressions, kind=kind)


_RIP_ONLY = Stack(parts=(RIP_FRAME,))

KERNEL_PANIC = Oops(
    "Kernel panic",
    (
        Format(title="Kernel panic - not syncing: stack-protector:",
               report="Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}",
               fmt="kernel panic: stack is corrupted in {0}", no_stack_trace=True),
        Format(title="Kernel panic - not syncing: stack-protector:",
               report="Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+",
               fmt="kernel panic: stack is corrupted in {0}", stack=_trace_stack(skip=("stack_chk",))),
        Format(title="Kernel panic - not syncing: corrupted stack end",
               report="Kernel panic - not syncing: corrupted stack end detected inside scheduler",
               fmt="kernel panic: corrupted stack end in {0}", alt=("stack-overflow in {0}",),
               stack=_trace_stack(skip=("schedule", "retint_kernel"), extractor="stall")),
        Format(title="Kernel panic - not syncing: kernel stack overflow", fmt="kernel stack overflow in {0}",
               alt=("stack-overflow in {0}",), stack=_trace_stack(skip=("bad_stack",), extractor="stall")),
        Format(title="Kernel panic - not syncing: Attempted to kill init!",
               fmt="kernel panic: Attempted to kill init!"),
        Format(title="Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
               fmt="kernel panic: Couldn't open N_TTY ldisc"),
        # Printed after a BUG/WARNING/hang: if it is the title, the real header was lost.
        Format(title="Kernel panic - not syncing: Fatal exception", fmt="kernel panic: Fatal exception",
               corrupted=True),
        Format(title="Kernel panic - not syncing: panic_on_warn set", fmt="kernel panic: panic_on_warn set",
               corrupted=True),
        Format(title="Kernel panic - not syncing: hung_task: blocked tasks",
               fmt="kernel panic: hung_task: blocked tasks", corrupted=True),
        Format(title="Kernel panic - not syncing: (.*)", fmt="kernel panic: {0}"),
    ),
    kind="PANIC",
)

KERNEL_BUG = Oops(
    "kernel BUG",
    (
        Format(title="kernel BUG at mm/usercopy.c", fmt="BUG: bad usercopy in {0}",
               stack=_trace_stack(skip=("usercopy", "__check"))),
        Format(title="kernel BUG at lib/list_debug.c", fmt="BUG: corrupted list in {0}",
               alt=("bad-access in {0}",), stack=_trace_stack()),
        # skb wrappers are full of BUG_ON, but the bug is almost always in the caller.
        Format(title="kernel BUG at (.*)", fmt="kernel BUG in {1}", stack=_rip_stack(skip=("^skb_",))),
    ),
)

LINUX_OOPSES: tuple[Oops, ...] = (
    BUG,
    WARNING,
    INFO,
    # The NMI watchdog: a CPU spinning with interrupts off (syzkaller has no entry for it).
    _simple("Watchdog detected hard LOCKUP", "Watchdog detected hard LOCKUP on cpu",
            "BUG: hard lockup in {0}", stack=_rip_stack(extractor="stall"), alt=("stall in {0}",)),
    # x86 breakpoint trap in kernel code (a BUG on some configs, a stray int3 otherwise).
    _simple("Oops: int3:", "Oops: int3:", "int3 in {0}", stack=_rip_stack()),
    _simple("Unable to handle kernel",
            "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
            "BUG: unable to handle kernel {0} in {1}", alt=("bad-access in {1}",), stack=_rip_stack()),
    Oops("general protection fault",
         (Format(title="general protection fault.*:", fmt="general protection fault in {0}",
                 alt=("bad-access in {0}",), stack=_rip_stack()),),
         (r"general protection fault .* error:\d+ in ",)),
    _simple("stack segment: ", "stack segment: ", "stack segment fault in {0}", stack=_rip_stack()),
    KERNEL_PANIC,
    _simple("PANIC: double fault", "PANIC: double fault", "PANIC: double fault in {0}", stack=_RIP_ONLY),
    Oops("rust_kernel: panicked",
         (Format(title="rust_kernel: panicked", report="rust_kernel: panicked at [^\n]*?\n(.+?)\n",
                 fmt="{0} in {1}", stack=_trace_stack(skip=(re.escape("__rustc::rust_begin_unwind"),))),)),
    KERNEL_BUG,
    # arm "Kernel BUG at c04289dc": the address means nothing across builds, "PC is at" names it.
    Oops("Kernel BUG", (
        Format(title="Kernel BUG at [0-9a-f]+ .*\\n(?:.*\\n)*?.*PC is at", fmt="kernel BUG in {0}",
               stack=_RIP_ONLY),
        Format(title="Kernel BUG (.*)", fmt="kernel BUG {0}"),
    )),
    _simple("BUG kmalloc-", "BUG kmalloc-.*: Object already free", "BUG: Object already free"),
    _simple("divide error:", "divide error: ", "divide error in {0}", stack=_RIP_ONLY),
    _simple("divide_error:", "divide_error: ", "divide error in {0}", stack=_RIP_ONLY),
    _simple("invalid opcode:", "invalid opcode: ", "invalid opcode in {0}", stack=_RIP_ONLY),
    Oops("UBSAN:", (
        Format(title="UBSAN:", report="UBSAN: Undefined behaviour in",
               fmt="UBSAN: undefined-behaviour in {0}",
               stack=_trace_stack(skip=("ubsan", "overflow"))),
        Format(title="UBSAN: array-index-out-of-bounds in", fmt="UBSAN: array-index-out-of-bounds in {0}",
               alt=("bad-access in {0}",), stack=_trace_stack(skip=("ubsan", "overflow"))),
        Format(title="UBSAN:", report="UBSAN: (.*?) in", fmt="UBSAN: {0} in {1}",
               stack=_trace_stack(skip=("ubsan", "overflow"))),
    ), kind="WARNING"),
    _simple("Booting the kernel.", "^Booting the kernel", "unexpected kernel reboot", no_stack_trace=True,
            suppressions=("Parsing ELF|Decompressing Linux|Unknown parameter '",), kind="PANIC"),
    _simple("unregister_netdevice: waiting for", "unregister_netdevice: waiting for (?:.*) to become free",
            "unregister_netdevice: waiting for DEV to become free", no_stack_trace=True, kind="WARNING"),
    _simple("VFS: Close: file count is 0", "VFS: Close: file count is 0",
            "VFS: Close: file count is zero (use-after-free)", no_stack_trace=True),
    _simple("VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount",
            "VFS: Busy inodes after unmount (use-after-free)", no_stack_trace=True),
    # arm64 "Internal error: synchronous external abort" is arm's "Unable to handle kernel paging request".
    _simple("Internal error:", "Internal error:", "Internal error in {0}", alt=("bad-access in {0}",),
            stack=_rip_stack()),
    _simple("Unhandled fault:", "Unhandled fault:", "Unhandled fault in {0}", alt=("bad-access in {0}",),
            stack=_rip_stack()),
    _simple("Alignment trap:", "Alignment trap:", "Alignment trap in {0}", stack=_rip_stack()),
    Oops("trusty: panic", (
        Format(title="trusty: panic.* ASSERT FAILED",
               report=r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)",
               fmt="trusty: ASSERT FAILED: {0}", no_stack_trace=True),
        Format(title="trusty: panic.* ASSERT FAILED.*: *(.*)", fmt="trusty: ASSERT FAILED: {0}",
               corrupted=True),
        Format(title="trusty: panic", report=r"trusty: panic \(.*?\): (.+)", fmt="trusty: panic: {0}",
               no_stack_trace=True),
    ), kind="PANIC"),
    _simple("fatal error:", "fatal error:", "go runtime error", no_stack_trace=True,
            suppressions=("ALSA", "fatal error: cannot create timer"), kind="PANIC"),
    # Produced by syzkaller's own executor and Go tools that share the console.
    _simple("SYZFAIL:", "SYZFAIL:(.*)", "SYZFAIL:{0}", no_stack_trace=True, kind="PANIC"),
    Oops("SYZFATAL:", (Format(title="SYZFATAL:(.*)()", fmt="SYZFATAL:{0}", alt=("SYZFATAL{1}",),
                              no_stack_trace=True),), kind="PANIC"),
    Oops("panic:", (
        Format(title="panic: Sentry detected .* stuck task", fmt="panic: Sentry detected stuck tasks",
               no_stack_trace=True),
        Format(title="panic:(.*)", fmt="panic:{0}", no_stack_trace=True),
    ), ("_panic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:"), kind="PANIC"),
)


@dataclass
class CompiledFormat:
    spec: Format
    title: re.Pattern[str]
    report: re.Pattern[str] | None
    parts: tuple[re.Pattern[str] | None, ...]  # None = STACK
    parts2: tuple[re.Pattern[str] | None, ...]
    skip: re.Pattern[str] | None  # the format's own skips; SKIP_RE applies to every format


@dataclass
class CompiledOops:
    spec: Oops
    formats: list[CompiledFormat] = field(default_factory=list)
    suppressions: list[re.Pattern[str]] = field(default_factory=list)


def _parts(parts: tuple[str, ...]) -> tuple[re.Pattern[str] | None, ...]:
    return tuple(None if part == STACK else compile_template(part) for part in parts)


def compile_table(oopses: tuple[Oops, ...] = LINUX_OOPSES) -> list[CompiledOops]:
    compiled: list[CompiledOops] = []
    for oops in oopses:
        entry = CompiledOops(oops, suppressions=[compile_template(s) for s in oops.suppressions])
        for spec in oops.formats:
            skip = None
            if spec.stack is not None and spec.stack.skip:
                skip = compile_template("|".join(spec.stack.skip))
            entry.formats.append(CompiledFormat(
                spec=spec,
                title=compile_template(spec.title),
                report=compile_template(spec.report) if spec.report else None,
                parts=_parts(spec.stack.parts) if spec.stack else (),
                parts2=_parts(spec.stack.parts2) if spec.stack else (),
                skip=skip,
            ))
        compiled.append(entry)
    return compiled
