"""`fivefold mail ...` end to end: send, serve, list, show, merge, dry runs, profiles, bad input."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fivefold.cli import root
from fivefold.mail import Message, send
from fivefold.mail.server import CaptureServer

from .conftest import PASSWORD, USER, send_argv, server_argv

SRC = Path(__file__).resolve().parents[2] / "src"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fivefold", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(root, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "body.html").write_text('<p>Bonjour <img src="cid:logo.png"></p>', encoding="utf-8")
    (tmp_path / "body.txt").write_text("Bonjour, texte\n", encoding="utf-8")
    (tmp_path / "logo.png").write_bytes(PNG)
    (tmp_path / "Übersicht 2024.csv").write_bytes(b"a;b\n1;2\n")
    return {name: tmp_path / name for name in ("body.html", "body.txt", "logo.png", "Übersicht 2024.csv")}


def test_send_list_show_with_starttls_auth(
    tmp_path: Path, tls_capture: CaptureServer, files: dict[str, Path]
) -> None:
    result = invoke(
        "mail",
        "send",
        "--from",
        "Zoë <zoe@example.org>",
        "--to",
        "ann@example.org",
        "--cc",
        "carl@example.org",
        "--bcc",
        "hidden@example.org",
        "--subject",
        "Bonjour ☃",
        "--text",
        str(files["body.txt"]),
        "--html",
        str(files["body.html"]),
        "--inline",
        str(files["logo.png"]),
        "--attach",
        str(files["Übersicht 2024.csv"]),
        "--server",
        tls_capture.address,
        "--security",
        "starttls",
        "--cafile",
        str(tls_capture.cafile),
        "--user",
        USER,
        "--password-env",
        "MAIL_PW",
        "--json",
        env={"MAIL_PW": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    sent = json.loads(result.output)
    assert sent["accepted"] == ["ann@example.org", "carl@example.org", "hidden@example.org"]
    assert b"hidden@example.org" not in tls_capture.raw()[0]
    listing = invoke("mail", "list", "--maildir", str(tls_capture.maildir), "--json")
    [entry] = json.loads(listing.output)
    assert entry["subject"] == "Bonjour ☃" and "hidden@example.org" in entry["envelope_recipients"]
    shown = json.loads(invoke("mail", "show", "1", "--maildir", str(tls_capture.maildir), "--json").output)
    parts = {(p["type"], p.get("filename")) for p in shown["parts"]}
    assert ("image/png", "logo.png") in parts and ("text/csv", "Übersicht 2024.csv") in parts
    assert shown["text"] == "Bonjour, texte\n"
    text = invoke("mail", "show", "last", "--maildir", str(tls_capture.maildir)).output
    assert "Subject: Bonjour ☃" in text and "[text/csv Übersicht 2024.csv 8 bytes]" in text
    raw = CliRunner().invoke(root, ["mail", "show", "1", "--raw", "--maildir", str(tls_capture.maildir)])
    assert raw.stdout_bytes == tls_capture.raw()[0]


def test_cli_debug_log_has_no_secret(tls_capture: CaptureServer) -> None:
    argv = send_argv(*server_argv(tls_capture, "starttls"))
    result = run_cli("--debug", "-vv", *argv, env={"MAIL_PW": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr  # the log really was at debug level
    wrong = run_cli("-vv", *argv, env={"MAIL_PW": PASSWORD + "!"})
    assert wrong.returncode == 1 and "authentication refused for user 'robot'" in wrong.stderr
    blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for output in (result.stderr, result.stdout, wrong.stderr, wrong.stdout):
        assert PASSWORD not in output and blob not in output
        assert base64.b64encode(PASSWORD.encode()).decode() not in output


def test_dry_run_writes_eml_and_sends_nothing(tmp_path: Path, capture: CaptureServer) -> None:
    out = tmp_path / "out"
    result = invoke(*send_argv("--bcc", "c@example.org", "--server", capture.address, "--dry-run", str(out),
                               subject="dry"))
    assert result.exit_code == 0, result.output
    [eml] = out.glob("*.eml")
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "dry" and parsed["Bcc"] is None
    assert capture.received() == []


@pytest.mark.parametrize(
    "args,code,pattern",
    [
        (["--to", "not an address"], 2, r"To: invalid address"),
        (
            ["--to", "b@example.org", "--attach", "/nonexistent/file.pdf"],
            2,
            r"attachment /nonexistent/file.pdf: no such",
        ),
        (["--to", "b@example.org", "--subject", "a\nb"], 2, r"control character"),
        (
            ["--to", "b@example.org", "--server", "127.0.0.1:1", "--retries", "0"],
            1,
            r"127.0.0.1:1: cannot connect",
        ),
        (["--to", "b@example.org", "--server", "mail.example.org:25"], 2, r"--allow-plain"),
        (
            ["--to", "b@example.org", "--user", "u", "--password-env", "NOPE_UNSET_VAR"],
            2,
            r"NOPE_UNSET_VAR is not set",
        ),
    ],
)
def test_bad_input_is_one_line(args: list[str], code: int, pattern: str) -> None:
    result = run_cli("mail", "send", "--from", "a@example.org", "--timeout", "3", *args)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fivefold mail: ")
    assert re.search(pattern, lines[0]), lines[0]


def test_serve_with_tls_and_auth_then_stop_after_count(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "SERVE_PW": "pw-for-serve"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fivefold",
            "mail",
            "serve",
            "--port",
            "0",
            "--maildir",
            str(tmp_path / "box"),
            "--tls",
            "starttls",
            "--auth",
            "robot:SERVE_PW",
            "--count",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (127\.0\.0\.1:\d+) .*cafile=(\S+)", line)
        assert match, line
        result = send(
            Message(sender="a@example.org", to=["b@example.org"], subject="served", text="x"),
            server=match.group(1),
            security="starttls",
            cafile=Path(match.group(2)),
            user="robot",
            password="pw-for-serve",
            timeout=10,
        )
        assert result.ok
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0
    assert "to=b@example.org" in out and "subject='served'" in out
    assert len(list((tmp_path / "box" / "new").iterdir())) == 1


def write_template(tmp_path: Path, html: str = "<p>Hi {{ name }}, you owe {{ amount }}</p>") -> Path:
    template = tmp_path / "tmpl"
    (template / "attach").mkdir(parents=True)
    (template / "subject.j2").write_text("Invoice for {{ name }}\n", encoding="utf-8")
    (template / "text.j2").write_text("Hi {{ name }},\nyou owe {{ amount }}.\n", encoding="utf-8")
    (template / "html.j2").write_text(html, encoding="utf-8")
    (template / "attach" / "conditions générales.txt").write_text("terms\n", encoding="utf-8")
    return template


def test_merge_validates_then_sends_then_resumes(tmp_path: Path, capture: CaptureServer) -> None:
    template = write_template(tmp_path)

    def merge_argv(csv: Path, *extra: str, sender: str = "b@example.org") -> list[str]:
        return ["mail", "merge", "--template", str(template), "--csv", str(csv), "--from", sender,
                "--server", capture.address, *extra]

    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\na@example.org,Ann\n", encoding="utf-8")
    result = run_cli(*merge_argv(bad))
    assert result.returncode == 2 and "missing from the CSV: amount" in result.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "email,name,amount\nann@example.org,Ann <script>,12 €\nbob@example.org,Bob,7\nnope,Broken,1\n",
        encoding="utf-8",
    )
    result = run_cli(*merge_argv(rows))
    assert result.returncode == 2 and "line 4" in result.stderr
    assert capture.received() == []  # nothing of a bad batch was sent
    rows.write_text(
        "email,name,amount\nann@example.org,Ann <script>,12 €\nbob@example.org,Bob,7\n", encoding="utf-8"
    )
    outbox = tmp_path / "journal.sqlite"
    ok = invoke(*merge_argv(rows, "--outbox", str(outbox), "--json", sender="Billing <b@example.org>"))
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["sent"] == 2
    messages = {str(m["To"].addresses[0].addr_spec): m for m in capture.messages()}
    ann = messages["ann@example.org"]
    assert ann["Subject"] == "Invoice for Ann <script>"
    assert ann.get_body(("html",)).get_content() == "<p>Hi Ann &lt;script&gt;, you owe 12 €</p>\n"
    assert ann.get_body(("plain",)).get_content() == "Hi Ann <script>,\nyou owe 12 €.\n"
    [attachment] = list(ann.iter_attachments())
    assert attachment.get_filename() == "conditions générales.txt"
    again = invoke(*merge_argv(rows, "--outbox", str(outbox), "--json"))
    assert json.loads(again.output)["skipped"] == 2 and len(capture.received()) == 2


def test_profile_from_fivefold_toml(tmp_path: Path, capture: CaptureServer) -> None:
    config = tmp_path / "fivefold.toml"
    config.write_text(
        f'[mail]\nfrom = "Ops <ops@example.org>"\n\n[mail.profiles.local]\n'
        f'server = "{capture.address}"\nsecurity = "none"\n',
        encoding="utf-8",
    )
    result = invoke(
        "mail",
        "send",
        "--profile",
        "local",
        "--to",
        "b@example.org",
        "--subject",
        "via profile",
        env={"FIVEFOLD_CONFIG": str(config)},
    )
    assert result.exit_code == 0, result.output
    assert capture.messages()[0]["From"].addresses[0].addr_spec == "ops@example.org"
    config.write_text('[mail]\npassword = "oops"\n', encoding="utf-8")
    result = run_cli(
        "mail",
        "send",
        "--to",
        "b@example.org",
        "--from",
        "a@example.org",
        env={"FIVEFOLD_CONFIG": str(config)},
    )
    assert result.returncode == 2 and "password is not allowed" in result.stderr
    # A misspelt yes/no is an error, not a silent "no".
    config.write_text("[mail]\n", encoding="utf-8")
    result = run_cli("mail", "send", "--to", "b@example.org", "--from", "a@example.org",
                     env={"FIVEFOLD_CONFIG": str(config), "FIVEFOLD_MAIL_ALLOW_PLAIN": "ture"})
    assert result.returncode == 2 and "allow_plain" in result.stderr and "'ture'" in result.stderr
