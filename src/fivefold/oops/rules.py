"""Rules shared by every crash format: stack sections, frames to skip, anchors, types.

All data: regular expressions (with :mod:`fivefold.oops.formats` templates) and word lists
taken from syzkaller's ``pkg/report`` conventions, so that the frame a title names is the
one syzbot would pick.
"""

from __future__ import annotations

from fivefold.oops.formats import compile_template

# fmt: off
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
    "__phys_addr", "__fortify_report", "cleanup_srcu_struct", "rhashtable_lookup",
    "extract_(user|iter)_to_sg",
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
    r"Killed process .* \(sshd\)", "lowmemorykiller: Killing 'syz-executor'",
    "lowmemorykiller: Killing 'sshd'",
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
    ("KMSAN-USE-AFTER-FREE-READ", ("KMSAN: kernel-infoleak-after-free",
                                   "KMSAN: kernel-usb-infoleak-after-free",
                                   "KMSAN: use-after-free")),
    ("KMSAN-INFO-LEAK", ("KMSAN: kernel-infoleak", "KMSAN: kernel-usb-infoleak")),
    ("KASAN-NULL-POINTER-DEREFERENCE-WRITE", ("KASAN: null-ptr-deref Write",)),
    ("KASAN-NULL-POINTER-DEREFERENCE-READ", ("KASAN: null-ptr-deref Read",)),
    ("NULL-POINTER-DEREFERENCE", ("BUG: unable to handle kernel NULL pointer dereference in",)),
    ("KASAN-WRITE", ("KASAN: global-out-of-bounds Write", "KASAN: out-of-bounds Write",
                     "KASAN: slab-out-of-bounds Write", "KASAN: stack-out-of-bounds Write",
                     "KASAN: user-memory-access Write", "KASAN: vmalloc-out-of-bounds Write",
                     "KASAN: wild-memory-access Write")),
    ("KASAN-READ", ("KASAN: global-out-of-bounds Read", "KASAN: invalid-access Read",
                    "KASAN: out-of-bounds Read",
                    "KASAN: slab-out-of-bounds Read", "KASAN: slab-out-of-bounds",
                    "KASAN: stack-out-of-bounds Read", "KASAN: stack-out-of-bounds",
                    "KASAN: unknown-crash Read",
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
    ("ATOMIC_SLEEP", ("BUG: scheduling while atomic in",
                      "BUG: sleeping function called from invalid context in")),
    ("LEAK", ("memory leak in",)),
    ("BUG", ("BUG: bad usercopy in", "kernel BUG")),
    ("WARNING", ("WARNING in",)),
    ("UNKNOWN", ("BUG: stack guard page was hit in", "WARNING: corrupted",
                 "WARNING: kernel stack frame pointer has bad value", "WARNING: kernel stack regs has bad")),
    ("HANG", ("BUG: soft lockup in", "BUG: hard lockup in", "INFO: rcu detected stall in",
              "INFO: task can't die in", "INFO: task hung in")),
    ("DoS", ("int3 in", "Alignment trap in", "BUG: Object already free", "Internal error in",
             "PANIC: double fault",
             "Unhandled fault in", "VFS: Busy inodes after unmount (use-after-free)",
             "VFS: Close: file count is zero (use-after-free)", "divide error in",
             "general protection fault in",
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


# fmt: on

SKIP_RE = compile_template("|".join(SKIP_FRAMES))
