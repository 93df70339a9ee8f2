"""Symbolization against the committed test ELFs (rebuilt by tests/oops/elf/build.sh).

Expected lines come from the ``MARK:name`` comments in the C sources, and addresses from the
ELFs themselves (symbol table + capstone), so a rebuild with another compiler keeps the tests
meaningful.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
from pathlib import Path

import capstone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fivefold._common.errors import FivefoldError
from fivefold.oops.symbolize import DEMO_ELF_DIR, FrameQuery, SourceLocation, Symbolizer, kernel_offset_of
from fivefold.oops.symbolize_elf import ElfImage, Symbol

# The C sources and the x86_64 pair (vmlinux-x86_64, demo_mod.ko) ship in the package for the
# demo; the ARM and ARM64 builds serve only the tests and live in tests/oops/elf.
ELF_DIR = Path(__file__).parent / "elf"
SRC = DEMO_ELF_DIR / "src"
MODULES = DEMO_ELF_DIR
DEMO_LOG = DEMO_ELF_DIR / "demo-x86.log"
ARCHES = ("x86_64", "arm", "thumb", "arm64")
HAVE_LLVM = shutil.which("llvm-symbolizer") is not None
HAVE_ADDR2LINE = shutil.which("addr2line") is not None
BACKENDS = [
    pytest.param(
        "llvm-symbolizer",
        marks=pytest.mark.skipif(not HAVE_LLVM, reason="llvm-symbolizer not installed (Debian package llvm)"),
    ),
    pytest.param(
        "addr2line",
        marks=pytest.mark.skipif(not HAVE_ADDR2LINE, reason="addr2line not installed (binutils-multiarch)"),
    ),
    "pyelftools",
]
TRAPS = {
    "x86_64": b"\x0f\x0b",
    "arm": struct.pack("<I", 0xE7F001F2),
    "thumb": struct.pack("<H", 0xDE02),
    "arm64": struct.pack("<I", 0xD4210000),
}
ENGINES = {
    "x86_64": (capstone.CS_ARCH_X86, capstone.CS_MODE_64),
    "arm": (capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM),
    "thumb": (capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB),
    "arm64": (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM),
}


def mark(name: str) -> tuple[str, int]:
    """(file name, line) of the source line carrying ``MARK:name``."""
    for path in sorted(SRC.glob("*.c")):
        for number, text in enumerate(path.read_text().splitlines(), 1):
            if f"MARK:{name} " in text:
                return path.name, number
    raise AssertionError(f"no MARK:{name}")


def where(loc: SourceLocation) -> tuple[str, str, int]:
    return loc.function, Path(loc.file).name, loc.line


def expect(*items: tuple[str, str]) -> list[tuple[str, str, int]]:
    """(function, mark) pairs, innermost first -> comparable (function, file, line)."""
    return [(fn, *mark(m)) for fn, m in items]


def vmlinux(arch: str) -> Path:
    return (DEMO_ELF_DIR if arch == "x86_64" else ELF_DIR) / f"vmlinux-{arch}"


COMMITTED_ELFS = [*(vmlinux(arch) for arch in ARCHES), MODULES / "demo_mod.ko"]


def text_of(image: ElfImage, sym: Symbol) -> bytes:
    section = image.elf.get_section(sym.section)
    start = sym.address - section["sh_addr"]
    return section.data()[start : start + sym.size]


def helpers(image: ElfImage) -> tuple[Symbol, Symbol]:
    """(a.c's small helper, b.c's big helper)."""
    small, big = sorted(image._by_name["helper"], key=lambda s: s.size)
    return small, big


def trap_offset(image: ElfImage, arch: str, sym: Symbol) -> int:
    code = text_of(image, sym)
    step = 2 if arch == "thumb" else 4 if arch != "x86_64" else 1
    for off in range(0, len(code), step):
        if code[off : off + len(TRAPS[arch])] == TRAPS[arch]:
            return off
    raise AssertionError(f"no trap in {sym.name}")


def return_offset(image: ElfImage, arch: str, caller: str, callee: str) -> int:
    """Offset in ``caller`` of the instruction after its call to ``callee``."""
    sym = image.lookup(caller, None, None)
    target = image.lookup(callee, None, None)
    assert sym is not None and target is not None
    md = capstone.Cs(*ENGINES[arch])
    for insn in md.disasm(text_of(image, sym), sym.address):
        operand = insn.op_str.lstrip("#")
        is_call = insn.mnemonic in ("call", "bl", "blx") and operand.startswith("0x")
        if is_call and int(operand, 16) == target.address:
            return insn.address + insn.size - sym.address
    raise AssertionError(f"{caller} does not call {callee}")


@pytest.fixture(scope="module")
def images() -> dict[str, ElfImage]:
    opened = {arch: ElfImage(vmlinux(arch), arch) for arch in ARCHES}
    yield opened  # type: ignore[misc]
    for image in opened.values():
        image.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", ARCHES)
def test_frames_resolve_with_inline_chains_and_duplicates(
    arch: str, backend: str, images: dict[str, ElfImage]
) -> None:
    image = images[arch]
    small, big = helpers(image)
    assert small.span != big.span
    bug_in_b = trap_offset(image, arch, big)
    ioctl = image.lookup("demo_ioctl", None, None)
    assert ioctl is not None
    bug_in_ioctl = trap_offset(image, arch, ioctl)
    ret = return_offset(image, arch, "demo_dispatch", "demo_ioctl")
    queries = [
        # The faulting PC: the BUG() of validate(), inlined into b.c's helper (found by size).
        FrameQuery("helper", bug_in_b, big.span, None, None, is_return_address=False),
        # The same name with a's size: the other file.
        FrameQuery("helper", 0, small.span, None, None, is_return_address=False),
        # Two levels of always_inline.
        FrameQuery("demo_ioctl", bug_in_ioctl, ioctl.span, None, None, is_return_address=False),
        # A return address: looked up at pc-1, the line of the call.
        FrameQuery("demo_dispatch", ret, None, None, None),
        FrameQuery("no_such_function", 4, 8, None, None),
    ]
    with Symbolizer(vmlinux(arch), expected_arch=arch, backend=backend) as sym:
        assert sym.backend == backend
        got = [[where(loc) for loc in chain] for chain in sym.symbolize(queries)]
        chains = sym.symbolize(queries[:1])
    assert got[0] == expect(("validate", "validate_bug"), ("helper", "helper_b_validate"))
    assert [loc.inlined for loc in chains[0]] == [True, False]
    assert got[1] == expect(("helper", "helper_a_body"))
    assert got[2] == expect(
        ("check_len", "check_len_bug"), ("parse_hdr", "parse_hdr_call"), ("demo_ioctl", "demo_ioctl_parse")
    )
    assert got[3] == expect(("demo_dispatch", "demo_dispatch_call"))
    assert got[4] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_kaslr_raw_addresses_modules_and_return_addresses(backend: str, images: dict[str, ElfImage]) -> None:
    image = images["x86_64"]
    start = image.lookup("_start", None, None)
    assert start is not None
    ret = return_offset(image, "x86_64", "_start", "demo_dispatch")
    kaslr = 0x1A000000
    queries = [
        FrameQuery(None, None, None, None, start.address + ret + kaslr),
        FrameQuery(None, None, None, None, start.address + ret + kaslr, is_return_address=False),
        FrameQuery("demo_mod_ioctl", 0x15, 0x19, "demo_mod", 0xFFFFFFFFC0200025),
        FrameQuery("demo_mod_ioctl", 0x15, 0x19, "demo-mod", None),  # file names may use -
        FrameQuery("demo_mod_ioctl", 0x15, 0x19, "absent_mod", 0xFFFFFFFFC0300025),
    ]
    with Symbolizer(vmlinux("x86_64"), MODULES, kernel_offset=kaslr, backend=backend) as sym:
        got = [[where(loc) for loc in chain] for chain in sym.symbolize(queries)]
    assert got[0] == expect(("_start", "start_call"))
    # Without the pc-1 rule the return address falls on the next line (the for loop).
    assert got[1] and got[1] != got[0]
    assert got[2] == got[3] == expect(("demo_mod_ioctl", "mod_ioctl_call"))
    assert got[4] == []


def test_backends_agree_on_every_function_start_and_return(images: dict[str, ElfImage]) -> None:
    if not (HAVE_LLVM and HAVE_ADDR2LINE):
        pytest.skip("needs both llvm-symbolizer and addr2line to compare")
    for arch in ARCHES:
        image = images[arch]
        queries = [
            FrameQuery(s.name, off, s.span, None, None, is_return_address=False)
            for s in image._sorted
            for off in range(0, s.size, 2 if arch != "x86_64" else 1)
        ]
        answers = {}
        for backend in ("llvm-symbolizer", "addr2line", "pyelftools"):
            with Symbolizer(vmlinux(arch), backend=backend) as sym:
                answers[backend] = [[where(loc) for loc in c] for c in sym.symbolize(queries)]
        assert answers["llvm-symbolizer"] == answers["addr2line"] == answers["pyelftools"], arch
        assert sum(1 for chain in answers["pyelftools"] if chain) > len(queries) * 0.9


def test_one_process_for_all_addresses(monkeypatch: pytest.MonkeyPatch, images: dict[str, ElfImage]) -> None:
    if not (HAVE_LLVM and HAVE_ADDR2LINE):
        pytest.skip("needs llvm-symbolizer and addr2line")
    started: list[list[str]] = []
    real = subprocess.Popen

    def counting(argv: list[str], *args: object, **kwargs: object) -> subprocess.Popen[str]:
        started.append(list(argv))
        return real(argv, *args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "Popen", counting)
    _, big = helpers(images["x86_64"])
    queries = [FrameQuery("helper", off % big.size, big.span, None, None) for off in range(400)]
    queries += [FrameQuery("demo_mod_work", 3, 0xB, "demo_mod", None)] * 50
    for backend, processes in (("llvm-symbolizer", 1), ("addr2line", 2)):
        started.clear()
        with Symbolizer(vmlinux("x86_64"), MODULES, backend=backend) as sym:
            first = sym.symbolize(queries)
            second = sym.symbolize(queries[::-1])
        assert len(started) == processes, backend  # one per session (per ELF for addr2line)
        assert second == first[::-1]
        assert all(first)


def test_pyelftools_fallback_when_no_tool_is_installed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="fivefold"),
        Symbolizer(vmlinux("arm64"), search_path=str(tmp_path)) as sym,
    ):
        assert sym.backend == "pyelftools"
        got = sym.symbolize([FrameQuery("helper", 0, 0xC, None, None, is_return_address=False)])
    assert [where(loc) for loc in got[0]] == expect(("helper", "helper_a_body"))
    assert "neither llvm-symbolizer nor addr2line" in caplog.text


def test_a_dying_tool_falls_back_to_pyelftools(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = tmp_path / "llvm-symbolizer"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with (
        caplog.at_level(logging.WARNING, logger="fivefold"),
        Symbolizer(vmlinux("x86_64"), search_path=str(tmp_path)) as sym,
    ):
        assert sym.backend == "llvm-symbolizer"
        got = sym.symbolize([FrameQuery("helper", 0, 0x10, None, None, is_return_address=False)])
        assert sym.backend == "pyelftools"
    assert [where(loc) for loc in got[0]] == expect(("helper", "helper_a_body"))
    assert "llvm-symbolizer failed" in caplog.text


def test_bad_elf_files_raise_one_line_errors(tmp_path: Path) -> None:
    text = tmp_path / "vmlinux.txt"
    text.write_text("not an elf\n")
    truncated = tmp_path / "vmlinux.cut"
    truncated.write_bytes(vmlinux("x86_64").read_bytes()[:40])
    cases = [
        (tmp_path / "missing", "no such file"),
        (text, "not an ELF file"),
        (truncated, "unreadable ELF"),
        (tmp_path, "not a regular file"),
    ]
    for path, words in cases:
        with pytest.raises(FivefoldError) as info:
            Symbolizer(path)
        assert str(path) in str(info.value) and words in str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(FivefoldError, match=r"vmlinux-arm64: ELF file for arm64, but the crash is from x86"):
        Symbolizer(vmlinux("arm64"), expected_arch="x86_64")
    with Symbolizer(vmlinux("thumb"), expected_arch="thumb") as sym:  # Thumb code lives in ARM ELFs
        assert sym.arch == "arm"
    with pytest.raises(FivefoldError, match="no such modules directory"):
        Symbolizer(vmlinux("x86_64"), tmp_path / "nomods")


def test_module_of_another_architecture_is_refused(tmp_path: Path) -> None:
    (tmp_path / "demo_mod.ko").write_bytes((MODULES / "demo_mod.ko").read_bytes())
    with (
        Symbolizer(vmlinux("arm64"), tmp_path) as sym,
        pytest.raises(FivefoldError, match=r"demo_mod.ko: ELF file for x86_64"),
    ):
        sym.symbolize([FrameQuery("demo_mod_work", 3, 0xB, "demo_mod", None)])


def test_committed_elfs_are_small_and_carry_dwarf() -> None:
    for path in COMMITTED_ELFS:
        assert path.stat().st_size < 100_000, path
        image = ElfImage(path)
        try:
            assert image.has_dwarf()
        finally:
            image.close()


@pytest.mark.skipif(
    not all(shutil.which(cc) for cc in ("gcc", "arm-linux-gnueabi-gcc", "aarch64-linux-gnu-gcc")),
    reason="the Debian cross compilers gcc-arm-linux-gnueabi and gcc-aarch64-linux-gnu are not installed",
)
def test_build_script_reproduces_the_committed_elfs(tmp_path: Path) -> None:
    subprocess.run(["sh", str(ELF_DIR / "build.sh"), str(tmp_path)], check=True, capture_output=True)
    for path in COMMITTED_ELFS:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_kernel_offset_line_and_out_of_range_addresses() -> None:
    log = DEMO_LOG.read_text()
    offset = kernel_offset_of(log)
    assert offset == 0x1A000000
    assert kernel_offset_of("no panic here") is None
    queries = [
        FrameQuery(None, None, None, None, 0x1234),  # below the KASLR offset
        FrameQuery(None, None, None, None, 1 << 40),  # beyond a 32-bit ELF
    ]
    with Symbolizer(vmlinux("arm"), kernel_offset=0x10000) as sym:
        assert sym.symbolize(queries) == [[], []]


def test_demo_log_symbolizes_against_the_shipped_elf() -> None:
    frames = re.findall(
        r"\[<([0-9a-f]+)>\] (?:\? )?(\w+)\+(0x[0-9a-f]+)/(0x[0-9a-f]+)(?: \[(\w+)\])?", DEMO_LOG.read_text()
    )
    assert len(frames) == 5
    queries = [FrameQuery(f, int(o, 16), int(s, 16), m or None, int(a, 16)) for a, f, o, s, m in frames]
    rip = re.search(r"RIP: 0010:(\w+)\+(0x[0-9a-f]+)/(0x[0-9a-f]+)", DEMO_LOG.read_text())
    assert rip is not None
    queries.insert(
        0, FrameQuery(rip[1], int(rip[2], 16), int(rip[3], 16), None, None, is_return_address=False)
    )
    elf = DEMO_ELF_DIR / "vmlinux-x86_64"
    with Symbolizer(elf, DEMO_ELF_DIR, kernel_offset=kernel_offset_of(DEMO_LOG.read_text()) or 0) as sym:
        by_name = [[where(loc) for loc in c] for c in sym.symbolize(queries)]
        by_address = sym.symbolize(
            [FrameQuery(None, None, None, None, q.address) for q in queries[1:] if not q.module]
        )
    assert by_name[0] == expect(("validate", "validate_bug"), ("helper", "helper_b_validate"))
    assert by_name[1] == expect(("drv_b", "drv_b_call"))
    assert by_name[2] == expect(("demo_ioctl", "demo_ioctl_call_b"))
    assert by_name[3] == expect(("demo_mod_ioctl", "mod_ioctl_call"))
    assert by_name[4] == expect(("demo_dispatch", "demo_dispatch_call"))
    assert by_name[5] == expect(("_start", "start_call"))
    assert [[where(loc) for loc in c] for c in by_address] == [by_name[i] for i in (1, 2, 4, 5)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_module_init_text_is_told_from_text(backend: str) -> None:
    # demo_mod_init lives in .init.text, which starts at 0 like .text: offset 4 is also
    # inside demo_mod_work, which is what a lookup without the section would answer.
    queries = [
        FrameQuery("demo_mod_init", 4, 0xA, "demo_mod", None, is_return_address=False),
        FrameQuery("demo_mod_work", 4, 0xB, "demo_mod", None, is_return_address=False),
    ]
    with Symbolizer(vmlinux("x86_64"), MODULES, backend=backend) as sym:
        got = [[where(loc) for loc in chain] for chain in sym.symbolize(queries)]
    assert got[0] == expect(("demo_mod_init", "mod_init_work"))
    assert got[1][-1] == ("demo_mod_work", *mark("mod_work_check"))


def test_module_init_text_without_addr2line_uses_pyelftools_layout(tmp_path: Path) -> None:
    # Without any tool, pyelftools lays the module's sections out at distinct addresses.
    queries = [
        FrameQuery("demo_mod_init", 4, 0xA, "demo_mod", None, is_return_address=False),
        FrameQuery("demo_mod_work", 4, 0xB, "demo_mod", None, is_return_address=False),
    ]
    with Symbolizer(vmlinux("x86_64"), MODULES, search_path=str(tmp_path)) as sym:
        assert sym.backend == "pyelftools"
        got = [[where(loc) for loc in chain] for chain in sym.symbolize(queries)]
    assert got[0] == expect(("demo_mod_init", "mod_init_work"))
    assert got[1][-1] == ("demo_mod_work", *mark("mod_work_check"))


ELF_BYTES = vmlinux("x86_64").read_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(ELF_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=30
    ),
    backend=st.sampled_from(["pyelftools", "llvm-symbolizer", "addr2line"]),
)
def test_damaged_elf_gives_an_error_or_answers_never_a_crash(
    tmp_path: Path, flips: list[tuple[int, int]], backend: str
) -> None:
    data = bytearray(ELF_BYTES)
    for at, value in flips:
        data[at] = value
    path = tmp_path / "vmlinux-damaged"
    path.write_bytes(bytes(data))
    queries = [
        FrameQuery("helper", 0x2D, 0x30, None, None, is_return_address=False),
        FrameQuery("demo_dispatch", 0x19, 0x30, None, None),
        FrameQuery(None, None, None, None, 0xFFFFFFFF81001022),
    ]
    try:
        with Symbolizer(path, backend=backend) as sym:
            chains = sym.symbolize(queries)
    except FivefoldError as exc:
        assert str(path) in str(exc)
        return
    assert len(chains) == len(queries)
    assert all(isinstance(loc, SourceLocation) for chain in chains for loc in chain)
