"""Context, registers, frames and the blamed frame, per architecture."""

from __future__ import annotations

from fivefold.oops import parse


def test_x86_64_kasan_sample(sample) -> None:  # type: ignore[no-untyped-def]
    (crash,) = parse(sample("x86_64-kasan.log"))
    assert crash.title == "KASAN: slab-use-after-free Read in demo_read"
    assert crash.type == "KASAN-USE-AFTER-FREE-READ"
    assert crash.alt_titles == ["bad-access in demo_read"]
    assert crash.arch == "x86_64"
    ctx = crash.context
    assert (ctx.cpu, ctx.pid, ctx.comm, ctx.tainted, ctx.release) == (
        3,
        812,
        "demo-reader",
        "G O",
        "6.12.0-rc3",
    )
    assert ctx.hardware is not None and ctx.hardware.startswith("QEMU Standard PC")
    assert ctx.kernel_offset == 0x2A400000
    assert crash.panicked and not crash.fatal
    frames = crash.frames
    assert [f.function for f in frames if not f.reliable] == ["demo_read", "demo_read"]
    read = next(f for f in frames if f.function == "demo_read" and f.reliable)
    assert (read.offset, read.size, read.module) == (0x8C, 0x140, "demo")
    assert read.build_id == "3f2a9c1b7d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
    assert {f.stack for f in frames} == {"task", "alloc", "free"}
    assert next(f for f in frames if f.stack == "free").function == "kasan_save_stack"
    assert crash.blamed is read
    assert crash.code_line is not None and "<48>" in crash.code_line


def test_arm64_null_deref_sample(sample) -> None:  # type: ignore[no-untyped-def]
    (crash,) = parse(sample("arm64-null-deref.log"))
    assert crash.title == "BUG: unable to handle kernel NULL pointer dereference in sensor_hub_poll"
    assert crash.type == "NULL-POINTER-DEREFERENCE"
    assert crash.arch == "arm64" and crash.fatal and crash.panicked
    regs = crash.registers
    assert regs is not None
    assert regs.pc_symbol == "sensor_hub_poll+0x5c/0x1d0 [sensor_hub]"
    assert regs.lr_symbol == "sensor_hub_poll+0x40/0x1d0 [sensor_hub]"
    assert regs.values["x29"] == 0xFFFFFFC00B7DBC40 and regs.values["x0"] == 0
    assert regs.values["pstate"] == 0x60400005 and regs.values["sp"] == 0xFFFFFFC00B7DBC40
    assert len([n for n in regs.values if n.startswith("x")]) == 30
    assert crash.context.modules == ["sensor_hub", "wlan", "cfg80211", "rfkill"]
    first = crash.frames[0]
    assert (first.function, first.stack, first.module) == ("sensor_hub_poll", "pc", "sensor_hub")
    assert crash.blamed is first


def test_arm32_registers_and_from_frames(sample) -> None:  # type: ignore[no-untyped-def]
    bug = parse(sample("mtk-arm-bug.log"))[1]
    regs = bug.registers
    assert regs is not None and regs.arch == "arm"
    assert regs.values["pc"] == 0xC04289DC and regs.values["psr"] == 0xA0000113
    assert regs.values["r10"] == 3 and regs.values["r0"] == 0xDE366A00 and regs.values["fp"] == 0xDF04BD4C
    names = [f.function for f in bug.frames]
    assert names[:4] == ["ltr553_i2c_probe", "dump_backtrace", "show_stack", "dump_stack"]
    probe = [f for f in bug.frames if f.function == "i2c_device_probe"]
    assert probe and (probe[0].offset, probe[0].size, probe[0].address) == (0xD0, 0x12C, 0xC07D88D8)
    assert "exception" in {f.stack for f in bug.frames}
    assert bug.code_line is not None and bug.code_line.endswith("(e7f001f2)")


def test_symbolized_inline_frames() -> None:
    text = (
        "BUG: KASAN: use-after-free in ip6_send_skb+0x2f5/0x330 net/ipv6/ip6_output.c:1748\n"
        "Read of size 8 at addr ffff88004fab1858 by task syz-executor0/30168\n"
        "Call Trace:\n"
        " __dump_stack lib/dump_stack.c:16 [inline]\n"
        " dump_stack+0x292/0x395 lib/dump_stack.c:52\n"
        " ip6_send_skb+0x2f5/0x330 net/ipv6/ip6_output.c:1748\n"
    )
    (crash,) = parse(text)
    inline = crash.frames[0]
    assert (inline.function, inline.inline, inline.file) == ("__dump_stack", True, "lib/dump_stack.c:16")
    assert crash.frames[1].file == "lib/dump_stack.c:52"
    assert crash.guilty_file == "net/ipv6/ip6_output.c"


def test_guilty_files_match_syzkaller(shared_dir) -> None:  # type: ignore[no-untyped-def]
    directory = shared_dir / "oops" / "syzkaller-guilty"
    total = right = 0
    for path in sorted(directory.iterdir()):
        head, _, log = path.read_bytes().partition(b"\n\n")
        want = head.decode().split("FILE:", 1)[1].strip()
        crashes = parse(log)
        got = (crashes[0].guilty_file if crashes else None) or ""
        total += 1
        right += got == want
    assert total >= 60
    assert right / total >= 0.95


def test_i386_page_fault_registers_and_module_pc() -> None:
    log = (
        b"[   10.100000] BUG: unable to handle page fault for address: 00001000\n"
        b"[   10.100002] Oops: 0000 [#1] SMP\n"
        b"[   10.100003] CPU: 0 PID: 99 Comm: insmod Not tainted 5.10.0 #1\n"
        b"[   10.100004] EIP: bad_read+0x12/0x20 [oopsmod]\n"
        b"[   10.100005] Code: 55 89 e5 8b 15 00 10 00 00 <8b> 02 5d c3 90 90\n"
        b"[   10.100006] EAX: 00000000 EBX: c1a2b3c4 ECX: 00000001 EDX: 00001000\n"
        b"[   10.100009] CR0: 80050033 CR2: 00001000 CR3: 35c6a000 CR4: 00150690\n"
        b"[   10.100010] Call Trace:\n"
        b"[   10.100011]  oopsmod_init+0x9/0x1000 [oopsmod]\n"
        b"[   10.100012]  do_one_initcall+0x42/0x1a0\n"
    )
    (crash,) = parse(log)
    assert crash.title == "BUG: unable to handle kernel paging request in bad_read"
    assert crash.type == "MEMORY_SAFETY_BUG" and crash.arch == "i386" and crash.fatal
    regs = crash.registers
    assert regs is not None and regs.values["ebx"] == 0xC1A2B3C4 and regs.values["cr2"] == 0x1000
    assert regs.pc_symbol == "bad_read+0x12/0x20 [oopsmod]"
    blamed = crash.blamed
    assert blamed is not None and (blamed.function, blamed.module) == ("bad_read", "oopsmod")
    assert crash.blamed.stack == "pc"
