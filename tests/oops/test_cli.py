"""`fivefold oops analyze` and `fivefold oops buckets`, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fivefold.oops.cli import cli

SRC = Path(__file__).resolve().parents[2] / "src"
DATA = SRC / "fivefold" / "oops" / "data"
ELF = DATA / "elf"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "fivefold", "oops", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )


def test_analyze_text_names_title_blame_registers_backtrace_code() -> None:
    result = CliRunner().invoke(cli, ["analyze", str(DATA / "samples" / "mtk-arm-bug.log")])
    assert result.exit_code == 0, result.output
    out = result.output.split("crash 2/2: ", 1)[1]
    assert out.startswith("kernel BUG in ltr553_i2c_probe")
    assert (
        out.index("kernel BUG in ltr553_i2c_probe")
        < out.index("Blamed frame:")
        < out.index("Registers (arm)")
    )
    assert "Backtrace:" in out and "i2c_device_probe+0xd0/0x12c" in out
    assert "<-- trapping instruction" in out and "deliberate trap" in out


def test_analyze_json_schema_and_stdin() -> None:
    log = (DATA / "samples" / "arm64-null-deref.log").read_bytes()
    result = run("analyze", "-", "--format", "json", stdin=log)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "fivefold.oops.report" and doc["version"] == 1
    (entry,) = doc["logs"]
    assert entry["log"] == "<stdin>"
    (crash,) = entry["crashes"]
    assert crash["title"] == "BUG: unable to handle kernel NULL pointer dereference in sensor_hub_poll"
    assert crash["registers"]["values"]["x29"] == 0xFFFFFFC00B7DBC40
    assert crash["code"]["instructions"][-1]["is_trapping"] is True
    assert crash["blamed"]["function"] == "sensor_hub_poll"


def test_analyze_markdown() -> None:
    result = CliRunner().invoke(
        cli, ["analyze", "--format", "markdown", str(DATA / "samples" / "x86_64-kasan.log")]
    )
    assert result.exit_code == 0
    assert "## KASAN: slab-use-after-free Read in demo_read" in result.output
    assert "### Backtrace" in result.output and "```" in result.output


def test_no_crash_found_exits_0_and_fail_on_crash_exits_1(tmp_path: Path) -> None:
    clean = tmp_path / "clean.log"
    clean.write_text("[    0.000000] Linux version 6.8.0\n")
    result = run("analyze", str(clean))
    assert result.returncode == 0
    assert b"no crash found" in result.stdout
    assert run("analyze", "--fail-on-crash", str(clean)).returncode == 0
    crashed = run("analyze", "--fail-on-crash", str(DATA / "samples" / "x86_64-kasan.log"))
    assert crashed.returncode == 1
    assert crashed.stderr.decode().strip() == "fivefold oops: 1 crash(es) found"


def test_missing_log_and_bad_vmlinux_are_one_line_errors(tmp_path: Path) -> None:
    missing = run("analyze", str(tmp_path / "nope.log"))
    assert missing.returncode == 1
    assert missing.stderr.decode() == f"fivefold oops: {tmp_path / 'nope.log'}: no such file\n"
    notelf = tmp_path / "vmlinux"
    notelf.write_bytes(b"not an elf at all")
    bad = run("analyze", str(DATA / "samples" / "x86_64-kasan.log"), "--vmlinux", str(notelf))
    assert bad.returncode == 1
    assert bad.stderr.decode() == f"fivefold oops: {notelf}: not an ELF file\n"
    gone = run("analyze", str(DATA / "samples" / "x86_64-kasan.log"), "--vmlinux", str(tmp_path / "x"))
    assert gone.returncode == 1 and b"no such file" in gone.stderr and b"Traceback" not in gone.stderr


@pytest.mark.skipif(not (ELF / "vmlinux-x86_64").is_file(), reason="the shipped test ELF is absent")
def test_symbolized_analysis_against_the_shipped_elf() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "analyze",
            str(ELF / "demo-x86.log"),
            "--vmlinux",
            str(ELF / "vmlinux-x86_64"),
            "--modules",
            str(ELF),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    (crash,) = doc["logs"][0]["crashes"]
    assert doc["logs"][0]["symbolizer"] in ("llvm-symbolizer", "addr2line", "pyelftools")
    top = crash["frames"][0]
    assert top["function"] == "helper" and top["stack"] == "pc"
    assert [s["function"] for s in top["source"]] == ["validate", "helper"]
    assert top["source"][0]["inlined"] is True
    module = next(f for f in crash["frames"] if f["module"] == "demo_mod")
    assert module["source"] and module["source"][-1]["file"].endswith("demo_mod.c")


def test_buckets_dedup_a_directory(tmp_path: Path) -> None:
    samples = DATA / "samples"
    for i in range(3):
        (tmp_path / f"kasan-{i}.log").write_bytes((samples / "x86_64-kasan.log").read_bytes())
    (tmp_path / "arm64.log").write_bytes((samples / "arm64-null-deref.log").read_bytes())
    (tmp_path / "clean.log").write_text("nothing here\n")
    result = CliRunner().invoke(cli, ["buckets", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["logs"] == 5 and doc["crashes"] == 4
    first, second = doc["buckets"]
    assert (first["title"], first["count"]) == ("KASAN: slab-use-after-free Read in demo_read", 3)
    assert first["example"]["log"].endswith(".log") and len(first["logs"]) == 3
    assert second["count"] == 1 and second["type"] == "NULL-POINTER-DEREFERENCE"
    text = CliRunner().invoke(cli, ["buckets", str(tmp_path)])
    assert "2 bucket(s), 4 crash(es)" in text.output


def test_buckets_join_alternative_titles() -> None:
    from fivefold.oops import parse
    from fivefold.oops.buckets import bucketize

    gpf = parse(b"general protection fault: 0000 [#1]\nRIP: 0010:foo_fn+0x1/0x2\nCall Trace:\n bar+0x1/0x2\n")
    kasan = parse(
        b"BUG: KASAN: use-after-free in foo_fn+0x1/0x2\nRead of size 1 at addr ffff88800000 by task x/1\n"
        b"Call Trace:\n foo_fn+0x1/0x2\n"
    )
    buckets = bucketize([("a", 1.0, gpf[0]), ("b", 2.0, kasan[0])])
    assert len(buckets) == 1 and buckets[0].count == 2
    data = buckets[0].to_dict()
    assert data["first_seen"]["log"] == "a" and data["last_seen"]["log"] == "b"


def test_mail_to_sends_the_report_with_the_raw_log() -> None:
    server_mod = pytest.importorskip("fivefold.mail.server", reason="fivefold.mail is not installed")
    log = DATA / "samples" / "x86_64-kasan.log"
    with server_mod.CaptureServer() as server:
        result = CliRunner().invoke(
            cli,
            [
                "analyze",
                str(log),
                "--mail-to",
                "dev@example.com",
                "--mail-server",
                f"127.0.0.1:{server.port}",
                "--mail-from",
                "ci@example.com",
            ],
        )
        assert result.exit_code == 0, result.output
        server.wait_for(1, timeout=10)
        (message,) = server.messages()
    assert message["Subject"] == "[oops] KASAN: slab-use-after-free Read in demo_read"
    assert message["To"] == "dev@example.com"
    names = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert (
        names["x86_64-kasan.log"].encode() == log.read_bytes()
        or names["x86_64-kasan.log"] == log.read_bytes()
    )
    assert "report.md" in names
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "Blamed frame:" in body.get_content()


def test_demo(tmp_path: Path) -> None:
    from fivefold.oops.demo import demo

    outputs = demo(tmp_path)
    assert "kernel BUG in ltr553_i2c_probe" in outputs["mtk-arm-bug.log"]
    assert (tmp_path / "report.json").is_file() and (tmp_path / "buckets.txt").is_file()
    doc = json.loads((tmp_path / "report.json").read_text())
    assert len(doc["logs"]) >= 3
    if (ELF / "vmlinux-x86_64").is_file():
        assert "b.c:16" in outputs["symbolized"]
