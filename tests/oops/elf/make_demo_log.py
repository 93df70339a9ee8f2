"""Write an x86_64 crash log whose frames, sizes and Code: bytes come from the test ELF.

Usage: make_demo_log.py VMLINUX MODULE.ko > demo-x86.log  (run by build.sh; needs the
``oops`` extra: pyelftools and capstone; reads the C sources in ``src/`` beside VMLINUX).
The trace is synthetic (the ELF never runs), but every ``func+off/size`` is a real return
address (the instruction after a call) or, for the RIP, the real ``ud2`` of BUG(), sizes are
what kallsyms prints (distance to the next symbol), and raw addresses are shifted by the
KASLR offset the log declares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import capstone
from elftools.elf.elffile import ELFFile

KASLR = 0x1A000000


def functions(path: str) -> tuple[dict[str, list[tuple[int, int]]], bytes, int]:
    """name -> [(address, kallsyms size)], the .text bytes and the .text address."""
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        text = elf.get_section_by_name(".text")
        data, base = text.data(), text["sh_addr"]
        syms = sorted(
            (s["st_value"], s.name)
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] == elf.get_section_index(".text")
        )
    out: dict[str, list[tuple[int, int]]] = {}
    ends = [a for a, _ in syms[1:]] + [base + len(data)]
    for (address, name), end in zip(syms, ends, strict=True):
        out.setdefault(name, []).append((address, end - address))
    return out, data, base


def calls(data: bytes, base: int, start: int, size: int) -> list[tuple[int, int]]:
    """(target, return address) of each call in [start, start+size)."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    code = data[start - base : start - base + size]
    return [(int(i.op_str, 16), i.address + i.size) for i in md.disasm(code, start) if i.mnemonic == "call"]


def frame(name: str, address: int, ret: int, size: int, module: str = "") -> str:
    mod = f" [{module}]" if module else ""
    return f"{name}+{ret - address:#x}/{size:#x}{mod}"


def main() -> None:
    vmlinux, module = sys.argv[1], sys.argv[2]
    syms, data, base = functions(vmlinux)
    msyms, mdata, mbase = functions(module)
    _, helper_b = sorted(syms["helper"], key=lambda s: s[1])  # b's helper is bigger
    (drv_b,) = syms["drv_b"]
    (demo_ioctl,) = syms["demo_ioctl"]
    (dispatch,) = syms["demo_dispatch"]
    (start,) = syms["_start"]
    (mod_ioctl,) = msyms["demo_mod_ioctl"]

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    helper_code = data[helper_b[0] - base : helper_b[0] - base + helper_b[1]]
    ud2 = next(i.address for i in md.disasm(helper_code, helper_b[0]) if i.mnemonic == "ud2")
    lo, hi = max(ud2 - 42, base), min(ud2 + 22, base + len(data))
    code = " ".join(
        f"<{b:02x}>" if lo + i == ud2 else f"{b:02x}" for i, b in enumerate(data[lo - base : hi - base])
    )
    ret_b = next(r for t, r in calls(data, base, *drv_b) if t == helper_b[0])
    ret_ioctl = next(r for t, r in calls(data, base, *demo_ioctl) if t == drv_b[0])
    ret_dispatch = next(r for t, r in calls(data, base, *dispatch) if t == demo_ioctl[0])
    ret_start = next(r for t, r in calls(data, base, *start) if t == dispatch[0])
    # In the relocatable module every call reads as a call to the next instruction; the
    # second call of demo_mod_ioctl is the one into demo_ioctl.
    ret_mod = calls(mdata, mbase, *mod_ioctl)[1][1]

    src = (Path(vmlinux).parent / "src" / "b.c").read_text().splitlines()
    bug_line = next(n for n, text in enumerate(src, 1) if "MARK:validate_bug" in text)
    mod_frame = frame("demo_mod_ioctl", mod_ioctl[0], ret_mod, mod_ioctl[1], "demo_mod")
    t = 4242.0

    def stamp() -> str:
        nonlocal t
        t += 0.000013
        return f"[{t:12.6f}]"

    lines = [
        "demo_mod: loading out-of-tree module taints kernel.",
        "demo_mod: probing /dev/demo0",
        "------------[ cut here ]------------",
        f"kernel BUG at /build/fake-kernel/b.c:{bug_line}!",
        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
        "CPU: 1 PID: 4242 Comm: demo-ioctl Tainted: G           O       6.1.0-fivefold #1",
        "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014",
        f"RIP: 0010:{frame('helper', helper_b[0], ud2, helper_b[1])}",
        f"Code: {code}",
        "RSP: 0018:ffffc90000a3bd98 EFLAGS: 00010202",
        "RAX: 0000000000000000 RBX: 00000000000003f1 RCX: 0000000000000000",
        "RDX: 0000000000000000 RSI: ffff888003e4c0b8 RDI: 00000000000003f1",
        "RBP: ffffc90000a3bdb8 R08: 0000000000000000 R09: 0000000000000000",
        "R10: 0000000000000000 R11: 0000000000000000 R12: ffff888003e4c0a0",
        "R13: 0000000000000001 R14: 0000000000000000 R15: 0000000000000000",
        "FS:  00007f1c2a3b4740(0000) GS:ffff88803ec80000(0000) knlGS:0000000000000000",
        "CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033",
        "CR2: 00007ffd2c1e5f08 CR3: 0000000004a2e000 CR4: 00000000003506e0",
        "Call Trace:",
        " <TASK>",
        f" [<{ret_b + KASLR:016x}>] {frame('drv_b', drv_b[0], ret_b, drv_b[1])}",
        f" [<{ret_ioctl + KASLR:016x}>] {frame('demo_ioctl', demo_ioctl[0], ret_ioctl, demo_ioctl[1])}",
        f" [<ffffffffc0200{ret_mod:03x}>] {mod_frame}",
        f" [<{ret_dispatch + KASLR:016x}>] {frame('demo_dispatch', dispatch[0], ret_dispatch, dispatch[1])}",
        f" [<{ret_start + KASLR:016x}>] ? {frame('_start', start[0], ret_start, start[1])}",
        " </TASK>",
        "Modules linked in: demo_mod(O)",
        "---[ end trace 0000000000000000 ]---",
        f"RIP: 0010:{frame('helper', helper_b[0], ud2, helper_b[1])}",
        f"Kernel Offset: {KASLR:#x} from 0xffffffff81000000 "
        "(relocation range: 0xffffffff80000000-0xffffffffbfffffff)",
        "Kernel panic - not syncing: Fatal exception",
        "---[ end Kernel panic - not syncing: Fatal exception ]---",
    ]
    sys.stdout.write("".join(f"{stamp()} {line}\n" for line in lines))


if __name__ == "__main__":
    main()
