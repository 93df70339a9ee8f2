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
            report=r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)",
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
            report="WARNING: possible circular locking dependency detected(?:.*\\n)+?.*is trying to acquire lock",
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

_INFO_LOCK = r" \](?:.*\n)+?"
INFO = Oops(
    "INFO:",
    (
        Format(title="INFO: possible circular locking dependency detected",
               report="INFO: possible circular locking dependency detected" + _INFO_LOCK
                      + ".*is trying to acquire lock(?:.*\\n)+?.*at: {{PC}} +{{FUNC}}",
               fmt="possible deadlock in {0}"),
        Format(title="INFO: possible irq lock inversion dependency detected",
               report="INFO: possible irq lock inversion dependency detected" + _INFO_LOCK
                      + ".*just changed the state of lock(?:.*\\n)+?.*at: {{PC}} +{{FUNC}}",
               fmt="possible deadlock in {0}"),
        Format(title="INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
               report="INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected" + _INFO_LOCK
                      + ".*is trying to acquire(?:.*\\n)+?.*at: {{PC}} +{{FUNC}}",
               fmt="possible deadlock in {0}"),
        Format(title="INFO: possible recursive locking detected",
               report="INFO: possible recursive locking detected" + _INFO_LOCK
                      + ".*is trying to acquire lock(?:.*\\n)+?.*at: {{PC}} +{{FUNC}}",
               fmt="possible deadlock in {0}"),
        Format(title="INFO: inconsistent lock state",
               report="INFO: inconsistent lock state" + _INFO_LOCK + ".*takes(?:.*\\n)+?.*at: {{PC}} +{{FUNC}}",
               fmt="inconsistent lock state in {0}"),
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
        Format(title="UBSAN:", report="UBSAN: Undefined behaviour in", fmt="UBSAN: undefined-behaviour in {0}",
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
        Format(title="trusty: panic.* ASSERT FAILED.*: *(.*)", fmt="trusty: ASSERT FAILED: {0}", corrupted=True),
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


# ---- stack parameters shared by all formats ----------------------------------------------

RISCV_STACK_START = r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}"

STACK_STARTS: tuple[str, ...] = (
    "Call (?:T|t)race",
    "Allocated:",
    "Allocated by task [0-9]+:",
    "Freed:",
    "Freed by task [0-9]+:",
    # 'backtrace:' but not 'stack backtrace:'; kmemleak may add a crc.
    r"[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:",
    "Backtrace:",
    "Uninit was stored to memory at",
    RISCV_STACK_START,
)

FRAME_PATTERNS: tuple[str, ...] = (
    "^ *(?:{{PC}} ){0,2}{{FUNC}}",
    # arm: "[<c0123>] (func) from [<c0456>] (caller+0x..": both names, as the top one is only in LR.
    r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}",
)

#: Generic reporting, locking, allocation and string machinery: never the frame to blame.
SKIP_FRAMES: tuple[str, ...] = (
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
    "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
    "(read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op", "report_bug",
    "fixup_bug", "print_report", "print_usage_bug", "do_error", r"_trap$|do_trap", "show_stack",
    "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc", "warn_bogus", "__warn",
    "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache", "allocate_slab",
    "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio", "__filemap_get_folio",
    "find_or_create_page", "do_read_cache_folio", "read_cache_page", "pagecache_get_page",
    "grab_cache_page_write_begin", "slab_", "debug_object", "timer_is_static_object",
    "work_is_static_object", "__might_fault", "print_unlock", "imbalance_bug", "lockdep", "bh_enable",
    "bh_disable", "perf_trace", "lock_acquire", "lock_release", "lock_class", "mark_lock",
    "(reacquire|mark)_held_locks", "raw_spin_rq", "spin_lock", "spin_trylock", "spin_unlock", "read_lock",
    "read_trylock", "write_lock", "write_trylock", "read_unlock", "write_unlock", "^down$", "down_read",
    "down_write", "down_read_trylock", "down_write_trylock", "down_trylock", "up_read", "up_write",
    "^mutex_", "^__mutex_", "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)", "(set|clear|change|test)_bit",
    "__wake_up", "^refcount_", "^kref_", "ref_tracker", "seqprop_assert", "memcpy", "memcmp", "memset",
    "memchr", "memmove", "memdup", "strcmp", "strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen",
    "strstr", "strnstr", "strnlen", "strchr", "strdup", "strndup", "copy_to_user", "copy_from_user",
    "copy_to_iter", "copy_from_iter", "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter",
    "^copyin$", "^copyout$", "put_user", "get_user", "might_fault", "might_sleep", "list_add", "list_del",
    "list_replace", "list_move", "list_splice", "^rb_", "^__rb_", "_indirect_thunk_", "string", "pointer",
    "snprintf", "scnprintf", "kasprintf", "kvasprintf", "printk", "va_format", "dev_info", "dev_notice",
    "dev_warn", "dev_err", "dev_alert", "dev_crit", "dev_emerg", "program_check_exception",
    "program_check_common", "del_timer", "flush_work", "__cancel_work_timer", "cancel_work_sync",
    "try_to_grab_pending", "flush_workqueue", "drain_workqueue", "destroy_workqueue", "queue_work",
    "finish_wait", "kthread_stop", "kobject_", "add_uevent_var", "get_device_parent", "device_add",
    "device_del", "device_unregister", "device_destroy", "device_release", "devres_release_all",
    "hwrng_unregister", "i2c_del_adapter", "__unregister_client", "device_for_each_child",
    "rollback_registered", "unregister_netdev", "sysfs_remove", "device_remove_file",
    "tty_unregister_device", "dummy_urb_enqueue", "usb_kill_urb", "usb_kill_anchored_urbs",
    "usb_control_msg", "usb_hcd_submit_urb", "usb_submit_urb", "^complete$", "wait_for_completion",
    "^kv?free$", "kfree_skb", "readb$", "readw$", "readl$", "readq$", "writeb$", "writew$", "writel$",
    "writeq$", "logic_in", "logic_out", r"^crc\d+", "crc_itu_t", "__might_resched", "assertfail", "^iput$",
    "^iput_final$", "^ihold$", "hex_dump_to_buffer", "print_hex_dump", "^klist_",
    "(trace|lockdep)_(hard|soft)irq", "^(un)?lock_page", "stack_trace_consume_entry", "arch_stack_walk",
    "stack_trace_save", "insert_work", "__queue_delayed_work", "queue_delayed_work_on", "ida_free",
    "do_(kernel|translation)_fault", "do_mem_abort", "el1_abort", "el1h_64_sync(?:_handler)?",
    "print_tainted", "xas_(?:start|load|find)", "find_lock_entries", "truncate_inode_pages_range",
    "__phys_addr", "__fortify_report", "cleanup_srcu_struct", "rhashtable_lookup", "extract_(user|iter)_to_sg",
    "drop_nlink", "^get_taint$", "^put_device$", "lock_timer_base", "__timer_delete_sync",
    "sk_stop_timer_sync", "__mod_timer", "fast_dput", "dput",
    # Buffer-head helpers warn about their caller's misuse.
    "^mark_buffer_dirty$",
)

#: Fault-injection stacks interleave with crash reports; seeing one marks the report damaged.
CORRUPTED_LINES: tuple[str, ...] = (r"^( \[\<?(?:0x)?[0-9a-f]+\>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x",)

#: Syscall wrappers differ per arch and kernel version; the shortest stripped name is canonical.
STRIP_FRAME_PREFIXES: tuple[str, ...] = (
    "SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_", "__se_",
    "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_",
)

#: Where a stall's identity lives: the frame just above the first of these dispatchers.
STALL_ANCHORS: tuple[str, ...] = (
    "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
    "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb", "do_softirq",
    "call_timer_fn", "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd", "smpboot_thread_fn",
    "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork", "vfs_write", "vfs_read",
    "vfs_iter_read", "vfs_iter_write", "do_iter_read", "do_iter_write", "call_read_iter", "call_write_iter",
    "new_sync_read", "new_sync_write", "vfs_ioctl", "ksys_ioctl", "compat_ioctl", "compat_sys_ioctl",
    "blkdev_driver_ioctl", "blkdev_ioctl", "^call_read_iter", "^call_write_iter", "do_iter_readv_writev",
    "^call_mmap", "mmap_region", "do_mmap", "do_dentry_open", "vfs_open", "^sock_sendmsg", "^sock_recvmsg",
    "^sock_release", "^__sock_release", "^setsockopt$", "kernel_setsockopt", "sock_common_setsockopt",
    "^listen$", "kernel_listen", "sk_common_release", "^sock_mmap", "^accept$", "kernel_accept",
    "^sock_do_ioctl", "^sock_ioctl", "^compat_sock_ioctl", "^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg",
    "^netlink_dump", "^(sys_)?(socketpair|connect|ioctl)", "__do_fault", "do_page_fault", "^page_fault$",
    "__fput", "task_work_run", "exit_to_usermode", "smp_call_function", "tasklet_action", "tasklet_hi_action",
)

#: Hung tasks: group the two big victim buckets, then skip scheduler/locking frames.
HANG_ANCHORS: dict[str, str] = {
    "rtnl_lock": "",
    "synchronize_rcu": "synchronize_rcu",
    "synchronize_srcu": "synchronize_rcu",
    "synchronize_net": "synchronize_rcu",
    "synchronize_sched": "synchronize_rcu",
}
HANG_SKIP: tuple[str, ...] = (
    "sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait", "synchronize",
    "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier",
)

#: Lines that never start a new report even in the middle of another one.
REPORT_START_IGNORES: tuple[str, ...] = (
    "invalid opcode: 0000", "Kernel panic - not syncing", "unregister_netdevice: waiting for",
    "PANIC: double fault", "Internal error:",
)

#: Informational messages with a stack: inside a report they mean it is interleaved.
INFO_MESSAGES_WITH_STACK: tuple[str, ...] = (
    "vmalloc: allocation failure:", "FAULT_INJECTION: forcing a failure", "FAULT_FLAG_ALLOW_RETRY missing",
)

#: Logs whose crash is an artefact of the test harness rather than the kernel.
SUPPRESSIONS: tuple[str, ...] = (
    "panic: failed to start executor binary", "panic: executor failed: pthread_create failed",
    "panic: failed to create temp dir", "fatal error: unexpected signal during runtime execution",
    "signal SIGBUS: bus error", "SYZFAIL: SIGBUS", r"Out of memory: Kill process .* \(syz-executor\)",
    r"Out of memory: Kill process .* \(sshd\)", r"Killed process .* \(syz-executor\)",
    r"Killed process .* \(sshd\)", "lowmemorykiller: Killing 'syz-executor'", "lowmemorykiller: Killing 'sshd'",
    "INIT: PANIC: segmentation violation!", r"\*\*\* stack smashing detected \*\*\*: terminated",
    "fatal error: runtime: out of memory", "fatal error: runtime: cannot allocate memory",
    "fatal error: out of memory", "fatal error: newosproc", "panic: .*cannot allocate memory",
)

#: Title prefix -> crash type (first match wins), as syzkaller classifies its buckets.
TITLE_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("KFENCE-USE-AFTER-FREE-WRITE", ("KFENCE: use-after-free write",)),
    ("KFENCE-USE-AFTER-FREE-READ", ("KFENCE: use-after-free read", "KFENCE: use-after-free")),
    ("KFENCE-WRITE", ("KFENCE: invalid write", "KFENCE: out-of-bounds write")),
    ("KFENCE-READ", ("KFENCE: invalid read", "KFENCE: out-of-bounds read", "KFENCE: out-of-bounds")),
    ("KFENCE-MEMORY-CORRUPTION", ("KFENCE: memory corruption",)),
    ("KFENCE-INVALID-FREE", ("KFENCE: invalid free",)),
    ("KMSAN-UNINIT-VALUE", ("KMSAN: uninit-value",)),
    ("KMSAN-USE-AFTER-FREE-READ", ("KMSAN: kernel-infoleak-after-free", "KMSAN: kernel-usb-infoleak-after-free",
                                   "KMSAN: use-after-free")),
    ("KMSAN-INFO-LEAK", ("KMSAN: kernel-infoleak", "KMSAN: kernel-usb-infoleak")),
    ("KASAN-NULL-POINTER-DEREFERENCE-WRITE", ("KASAN: null-ptr-deref Write",)),
    ("KASAN-NULL-POINTER-DEREFERENCE-READ", ("KASAN: null-ptr-deref Read",)),
    ("NULL-POINTER-DEREFERENCE", ("BUG: unable to handle kernel NULL pointer dereference in",)),
    ("KASAN-WRITE", ("KASAN: global-out-of-bounds Write", "KASAN: out-of-bounds Write",
                     "KASAN: slab-out-of-bounds Write", "KASAN: stack-out-of-bounds Write",
                     "KASAN: user-memory-access Write", "KASAN: vmalloc-out-of-bounds Write",
                     "KASAN: wild-memory-access Write")),
    ("KASAN-READ", ("KASAN: global-out-of-bounds Read", "KASAN: invalid-access Read", "KASAN: out-of-bounds Read",
                    "KASAN: slab-out-of-bounds Read", "KASAN: slab-out-of-bounds",
                    "KASAN: stack-out-of-bounds Read", "KASAN: stack-out-of-bounds", "KASAN: unknown-crash Read",
                    "KASAN: user-memory-access Read", "KASAN: vmalloc-out-of-bounds Read",
                    "KASAN: wild-memory-access Read", "KASAN: wild-memory-access")),
    ("KASAN-INVALID-FREE", ("KASAN: double-free or invalid-free", "KASAN: invalid-free")),
    ("KASAN-USE-AFTER-FREE-WRITE", ("KASAN: slab-use-after-free Write", "KASAN: use-after-free Write")),
    ("KASAN-USE-AFTER-FREE-READ", ("KASAN: slab-use-after-free Read", "KASAN: use-after-free Read",
                                   "KASAN: use-after-free")),
    ("MEMORY_SAFETY_BUG", ("BUG: corrupted list", "BUG: unable to handle kernel paging request")),
    ("REFCOUNT_WARNING", ("WARNING: refcount bug",)),
    ("MEMORY_SAFETY_UBSAN", ("UBSAN: array-index-out-of-bounds",)),
    ("KCSAN-DATARACE", ("KCSAN: data-race",)),
    ("KCSAN-ASSERT", ("KCSAN: assert: race in",)),
    ("LOCKDEP", ("BUG: bad unlock balance in", "BUG: held lock freed in", "BUG: rwlock", "BUG: spinlock",
                 "BUG: still has locks held in", "BUG: using", "WARNING: bad unlock balance in",
                 "WARNING: held lock freed in", "WARNING: lock held", "WARNING: locking bug in",
                 "WARNING: nested lock was not taken in", "WARNING: still has locks held in",
                 "WARNING: suspicious RCU usage in", "inconsistent lock state in", "possible deadlock in")),
    ("ATOMIC_SLEEP", ("BUG: scheduling while atomic in", "BUG: sleeping function called from invalid context in")),
    ("LEAK", ("memory leak in",)),
    ("BUG", ("BUG: bad usercopy in", "kernel BUG")),
    ("WARNING", ("WARNING in",)),
    ("UNKNOWN", ("BUG: stack guard page was hit in", "WARNING: corrupted",
                 "WARNING: kernel stack frame pointer has bad value", "WARNING: kernel stack regs has bad")),
    ("HANG", ("BUG: soft lockup in", "INFO: rcu detected stall in", "INFO: task can't die in",
              "INFO: task hung in")),
    ("DoS", ("int3 in", "Alignment trap in", "BUG: Object already free", "Internal error in", "PANIC: double fault",
             "Unhandled fault in", "VFS: Busy inodes after unmount (use-after-free)",
             "VFS: Close: file count is zero (use-after-free)", "divide error in", "general protection fault in",
             "go runtime error", "invalid opcode in", "kernel panic:", "kernel stack overflow", "panic:",
             "rust_kernel panicked", "stack segment fault in", "trusty:",
             "unregister_netdevice: waiting for DEV to become free")),
    ("REBOOT", ("unexpected kernel reboot",)),
    ("SYZ_FAILURE", ("SYZFAIL", "SYZFATAL:")),
    ("WARNING", ("WARNING:",)),
    ("UNKNOWN", ("BUG:", "INFO:")),
    ("KASAN-UNKNOWN", ("KASAN:",)),
    ("KFENCE-UNKNOWN", ("KFENCE:",)),
    ("KMSAN-UNKNOWN", ("KMSAN:",)),
    ("UBSAN", ("UBSAN:",)),
    ("KCSAN-UNKNOWN", ("KCSAN:",)),
)


@dataclass
class CompiledFormat:
    spec: Format
    title: re.Pattern[str]
    report: re.Pattern[str] | None
    parts: tuple[re.Pattern[str] | None, ...]  # None = STACK
    parts2: tuple[re.Pattern[str] | None, ...]
    skip: re.Pattern[str] | None  # the format's own skips; SKIP_RE applies to every format


SKIP_RE = compile_template("|".join(SKIP_FRAMES))


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
