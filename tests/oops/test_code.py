"""The Code: line decoder against syzkaller's expected disassemblies and hand-made lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold.oops.code import CodeReport, decode_code_line

ARCH_OF_DIR = {"amd64": "x86_64", "arm": "arm", "arm64": "arm64"}
# objdump's listing: "  2a:\t48 f7 f5   \tdiv    %rbp <-- trapping instruction", "*" marks the trap.
LISTING = re.compile(r"^(\*?)\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(\S+)")


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Code: " in line]


def expected_listing(out_text: str) -> list[tuple[bool, int, str, str]]:
    """(trapping, offset, bytes without spaces, mnemonic) from the appended disassembly."""
    if "Code disassembly (best guess):" not in out_text:
        return []
    tail = out_text.split("Code disassembly (best guess):", 1)[1]
    rows = []
    for line in tail.splitlines():
        m = LISTING.match(line)
        if m:
            rows.append((m.group(1) == "*", int(m.group(2), 16), m.group(3).replace(" ", ""), m.group(4)))
    return rows


def same_mnemonic(ours: str, objdump: str) -> bool:
    """capstone's AT&T syntax adds size suffixes objdump leaves out (movq vs mov, callq vs call)."""
    return ours == objdump or (ours[:-1] == objdump and ours[-1] in "bwlq")


def decompile_cases(shared_dir: Path) -> list[Path]:
    return sorted((shared_dir / "oops" / "syzkaller-decompile").glob("*/*.out"))


def test_matches_syzkaller_decompile_outputs(shared_dir: Path) -> None:
    compared = 0
    for out in decompile_cases(shared_dir):
        arch = ARCH_OF_DIR[out.parent.name]
        source = out.with_suffix(".in").read_text(errors="replace")
        reports = [r for r in (decode_code_line(line, arch) for line in code_lines(source)) if r]
        rows = expected_listing(out.read_text(errors="replace"))
        if not rows:
            # syzkaller left these undecoded; every code line still decodes, trap marked.
            for report in reports:
                assert report.trap_offset is None or report.trapping is not None, out
            continue
        report = reports[-1]  # the disassembly is of the report's last Code: line
        ours = {insn.offset: insn for insn in report.instructions}
        for trapping, offset, hexbytes, mnemonic in rows:
            insn = ours.get(offset)
            assert insn is not None, f"{out}: no instruction at {offset:#x}"
            assert insn.bytes_hex.replace(" ", "") == hexbytes, (out, offset)
            assert same_mnemonic(insn.mnemonic, mnemonic), (out, offset, insn.mnemonic, mnemonic)
            assert insn.is_trapping == trapping, (out, offset)
            compared += 1
    assert compared >= 25  # 28 instructions in the three appended listings


def test_every_syzkaller_code_line_decodes(shared_dir: Path) -> None:
    arches = {"amd64": "x86_64", "arm": "arm", "arm64": "arm64"}
    decoded = 0
    for path in sorted((shared_dir / "oops" / "syzkaller-decompile").glob("*/*.in")):
        for line in code_lines(path.read_text(errors="replace")):
            report = decode_code_line(line, arches[path.parent.name])
            if "Unable to access" in line or "Bad RIP" in line:
                assert report is None
                continue
            assert report is not None, line
            assert report.trapping is not None and report.trapping.offset == report.trap_offset
            assert report.from_trap[0].offset == report.trap_offset
            decoded += 1
    assert decoded >= 10


def test_x86_mid_instruction_start_realigns_on_the_trap() -> None:
    # Decoding from byte 0 ("ff ff" is no instruction) never lands on the marked byte; one
    # byte later it does, as decodecode and syzkaller find by trying each start.
    line = (
        "Code: ff ff c3 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 40 00 48 89 f8 48 89 f7 48 89 d6 48 89 ca "
        "4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3"
    )
    report = decode_code_line(line, "x86_64")
    assert report is not None and report.trap_offset == 42
    assert report.instructions[0].mnemonic == ".byte"
    assert report.instructions[1].offset == 1 and report.instructions[1].mnemonic.startswith("inc")
    assert [i.mnemonic for i in report.instructions if i.offset in (40, 42)] == ["syscall", "cmpq"]
    assert report.trap is None
    text = report.render()
    assert text.count("<-- trapping instruction") == 2  # in both listings
    assert "Code starting with the faulting instruction" in text


def test_x86_ud2_with_real_addresses() -> None:
    line = "[  1.0] Code: 83 f8 10 75 e6 89 c8 c3 <0f> 0b 90 e8 cb ff ff ff"
    report = decode_code_line(line, "amd64", pc=0xFFFFFFFF810010DD)
    assert report is not None
    assert report.trap == "ud2" and report.trap_meaning == "BUG()/WARN()"
    assert report.trapping is not None and report.trapping.address == 0xFFFFFFFF810010DD
    jne = report.instructions[1]
    assert jne.mnemonic == "jne" and jne.op_str == "0xffffffff810010c0"  # the loop head, as objdump shows
    assert "deliberate trap: ud2" in report.render()


@pytest.mark.parametrize(
    ("line", "arch", "trap", "meaning", "trapping_text"),
    [
        (
            "[ 3.226706] <2>-(2)[1:swapper/0]Code: e89da830 e30e3f4c e34c3115 e5830000 (e7f001f2)",
            "arm",
            "udf (e7f001f2)",
            "BUG()",
            "udf",
        ),
        ("Code: cb000260 d34cfc00 (d4210000)", "arm64", "brk #0x800", "BUG()/WARN()", "brk"),
        ("Code: 91006260 d2d40001 (d4212340)", "arm64", "brk #0x91a", "KASAN check failed", "brk"),
        ("Code: 4620 f7ff fffe 4603 (de02) 2000", "arm", "udf (de02)", "BUG()", "udf"),
        ("Code: 4620 f7ff fffe 4603 (de02)", "thumb", "udf (de02)", "BUG()", "udf"),
        ("Code: 9a000012 e2853020 e1a02000 e2422008 (e5034020)", "thumb", None, None, "str"),
    ],
)
def test_deliberate_traps(
    line: str, arch: str, trap: str | None, meaning: str | None, trapping_text: str
) -> None:
    report = decode_code_line(line, arch)
    assert report is not None
    assert report.trap == trap and report.trap_meaning == meaning
    assert report.trapping is not None and report.trapping.mnemonic == trapping_text
    marked = [row for row in report.render().splitlines() if "<-- trapping instruction" in row]
    assert len(marked) == 1 and trapping_text in marked[0]


def test_thumb2_pairs_and_arch_from_width() -> None:
    report = decode_code_line("Code: 4620 f7ff fffe 4603 (de02) 2000", "arm")
    assert report is not None and report.arch == "thumb" and report.unit == 2
    assert [(i.offset, i.bytes_hex, i.mnemonic) for i in report.instructions[:3]] == [
        (0, "4620", "mov"),
        (2, "f7ff fffe", "bl"),
        (6, "4603", "mov"),
    ]
    arm = decode_code_line("Code: e1a02000 (e7f001f2)", "thumb")
    assert arm is not None and arm.arch == "arm"


@pytest.mark.parametrize(
    "line",
    [
        "Code: Bad RIP value.",
        "Code: Unable to access opcode bytes at RIP 0xffffffffffffffd6.",
        "Code: ",
        "no code at all",
        "Code: e5034020 e1a02000",  # words on x86
    ],
)
def test_lines_without_code_give_none(line: str) -> None:
    assert decode_code_line(line, "x86_64") is None


def test_unknown_arch_and_width_mismatch() -> None:
    assert decode_code_line("Code: 48 8b <0f> 0b", "mips") is None
    assert decode_code_line("Code: 48 8b <0f> 0b", "arm64") is None
    report = decode_code_line("Code: 48 8b 05 <0f> 0b 48", "x86_64")
    assert report is not None and report.trap_offset == 3 and report.trap == "ud2"


def test_undecodable_words_become_data() -> None:
    report = decode_code_line("Code: ffffffff (d4210000)", "arm64")
    assert report is not None
    assert (report.instructions[0].mnemonic, report.instructions[0].op_str) == (".word", "0xffffffff")
    assert report.trap == "brk #0x800"
    payload = report.as_dict()
    assert payload["trap_offset"] == 4 and payload["instructions"][1]["is_trapping"]


HEX_UNIT = st.sampled_from(["", "<", "("]).flatmap(
    lambda open_: st.integers(1, 4).flatmap(
        lambda n: st.binary(min_size=n, max_size=n).map(
            lambda b: open_ + b.hex() + {"": "", "<": ">", "(": ")"}[open_]
        )
    )
)


@settings(max_examples=150, deadline=None)
@given(
    units=st.lists(HEX_UNIT, max_size=40),
    noise=st.text(max_size=20),
    arch=st.sampled_from(["x86_64", "i386", "arm", "thumb", "arm64", "aarch64", "?"]),
)
def test_never_raises_and_marks_at_most_one_trap(units: list[str], noise: str, arch: str) -> None:
    report = decode_code_line(f"{noise}Code: {' '.join(units)} {noise}", arch)
    if report is not None:
        assert isinstance(report, CodeReport)
        assert sum(i.is_trapping for i in report.instructions) <= 1
        if report.unit == 1:  # every byte shown once, as an instruction or as data
            covered = b"".join(bytes.fromhex(i.bytes_hex.replace(" ", "")) for i in report.instructions)
            assert covered == report.raw
        report.render()


def test_i386_decodes_in_32_bit_mode() -> None:
    # 32-bit: 0x40 is "inc %eax", not a REX prefix as in 64-bit mode.
    report = decode_code_line("Code: 40 89 e5 <0f> 0b", "i386")
    assert report is not None and report.arch == "i386"
    assert [i.mnemonic for i in report.instructions] == ["incl", "movl", "ud2"]
    wide = decode_code_line("Code: 40 89 e5 <0f> 0b", "x86_64")
    assert wide is not None and wide.instructions[0].mnemonic != "incl"


def test_x86_prefers_a_start_that_does_not_decode_zero_bytes() -> None:
    # From the demo log: the bytes start inside "cmp $0x3e8,%edi" (81 ff e8 03 00 00).
    # Decoding from byte 0 also reaches the trap ("addl (%rax),%eax; addb %bh,0x25(%rdi)"),
    # but the ELF holds "jg" at byte 3, which the decoder finds by avoiding 00-opcodes.
    demo = (Path(__file__).parents[2] / "src/fivefold/oops/data/elf/demo-x86.log").read_text()
    line = next(text for text in demo.splitlines() if "Code: " in text)
    report = decode_code_line(line, "x86_64")
    assert report is not None and report.trap == "ud2"
    first, second = report.instructions[:2]
    assert (first.mnemonic, first.bytes_hex) == (".byte", "03 00 00")
    assert (second.offset, second.mnemonic) == (3, "jg")
