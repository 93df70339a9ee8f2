"""Every input shape a device produces: prefixes, caller ids, levels, vendor formats, bad bytes."""

from __future__ import annotations

from fivefold.oops import parse
from fivefold.oops.lines import normalize

X86_GPF = (
    "general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] SMP KASAN\n"
    "CPU: 1 PID: 4321 Comm: poc Not tainted 6.8.0 #1\n"
    "RIP: 0010:nf_tables_newrule+0x1a2/0x2c0\n"
    "Call Trace:\n"
    " <TASK>\n"
    " nfnetlink_rcv_batch+0x9c1/0x1a00\n"
    " nfnetlink_rcv+0x3a5/0x450\n"
    " </TASK>\n"
)


def _with_prefix(text: str, prefix: str) -> str:
    return "".join(f"{prefix}{line}\n" for line in text.splitlines())


def _titles(data: str | bytes) -> list[str]:
    return [c.title for c in parse(data)]


def test_plain_and_timestamped_and_levels_agree() -> None:
    want = ["general protection fault in nf_tables_newrule"]
    assert _titles(X86_GPF) == want
    assert _titles(_with_prefix(X86_GPF, "[  12.345678] ")) == want
    assert _titles(_with_prefix(X86_GPF, "<4>[  12.345678] ")) == want
    assert _titles(_with_prefix(X86_GPF, "<4>")) == want
    assert _titles(_with_prefix(X86_GPF, "[  12.345678][ T4321] ")) == want


def test_crlf_and_invalid_utf8_and_nul_bytes() -> None:
    crlf = _with_prefix(X86_GPF, "[  1.000000] ").replace("\n", "\r\n").encode()
    assert _titles(crlf) == ["general protection fault in nf_tables_newrule"]
    garbage = b"\xff\xfe\x00\x80garbage\x00\n" + X86_GPF.encode() + b"\n\xc3\x28\xa0\xa1 more \x00\xff\n"
    crashes = parse(garbage)
    assert [c.title for c in crashes] == ["general protection fault in nf_tables_newrule"]
    assert crashes[0].start == garbage.index(b"general protection")


def test_caller_ids_keep_only_the_oopsing_task() -> None:
    lines = [f"[  5.{i:06d}][ T4321] {line}" for i, line in enumerate(X86_GPF.splitlines())]
    # Another task prints a stack frame in the middle of the report; it must not be blamed.
    lines.insert(4, "[  5.000003][   T77]  evil_frame+0x1/0x2")
    lines.insert(5, "[  5.000003][   T77] some other message")
    crashes = parse("\n".join(lines) + "\n")
    assert [c.title for c in crashes] == ["general protection fault in nf_tables_newrule"]
    functions = [f.function for f in crashes[0].frames]
    assert "evil_frame" not in functions
    assert functions[:3] == ["nf_tables_newrule", "nfnetlink_rcv_batch", "nfnetlink_rcv"]


def test_mtk_prefixes_are_rewritten(sample) -> None:  # type: ignore[no-untyped-def]
    data = sample("mtk-arm-bug.log")
    norm = normalize(data)
    assert "<2>-(2)" not in norm.text
    assert "\n[ 3.052227] PC is at ltr553_i2c_probe+0x94/0x9c\n" in norm.text
    crashes = parse(data)
    assert [c.title for c in crashes] == ["WARNING in corrupted", "kernel BUG in ltr553_i2c_probe"]
    bug = crashes[1]
    # Offsets point into the original bytes even though lines were rewritten.
    assert data[bug.start :].startswith(b"[ 2.052163] <2>-(2)[1:swapper/0]Kernel BUG at c04289dc")
    assert bug.registers is not None and bug.registers.pc_symbol == "ltr553_i2c_probe+0x94/0x9c"
    assert bug.blamed is not None and bug.blamed.function == "ltr553_i2c_probe"
    assert bug.fatal and bug.panicked and not crashes[0].fatal


def test_logcat_and_journalctl_kernel_lines() -> None:
    logcat = _with_prefix(X86_GPF, "11-22 19:00:01.123     0     0 E kernel  : ")
    journal = _with_prefix(X86_GPF, "Nov 22 19:00:01 myhost kernel: ")
    mono = _with_prefix(X86_GPF, "[   12.345678] myhost kernel: ")
    want = ["general protection fault in nf_tables_newrule"]
    assert _titles(logcat) == want
    assert _titles(journal) == want
    assert _titles(mono) == want


def test_no_crash_and_empty_inputs() -> None:
    assert parse("") == []
    assert parse(b"") == []
    assert parse("[    0.000000] Linux version 6.8.0\n[    1.0] Run /init as init process\n") == []
    assert parse(b"\x00" * 1000) == []


def test_several_crashes_in_one_log() -> None:
    first = _with_prefix(X86_GPF, "[  1.000000] ")
    second = (
        "[  9.000000] BUG: KASAN: use-after-free in foo_read+0x1/0x2\n"
        "[  9.000000] Read of size 8 at addr ffff888000000000 by task a/1\n"
        "[  9.000000] Call Trace:\n[  9.000000]  foo_read+0x1/0x2\n[  9.000000]  vfs_read+0x1/0x2\n"
    )
    crashes = parse(first + "[  5.0] normal line\n" + second)
    assert [c.title for c in crashes] == [
        "general protection fault in nf_tables_newrule",
        "KASAN: use-after-free Read in foo_read",
    ]
    assert crashes[0].end <= crashes[1].start
