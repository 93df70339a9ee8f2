"""Secret sources, XOAUTH2 token commands, refusal exit codes, shipped examples, outbox states."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fivefold._common.errors import UsageError
from fivefold.cli import root
from fivefold.mail import secrets
from fivefold.mail.outbox import Finished, Outbox
from fivefold.mail.server import CaptureServer
from fivefold.mail.transport import Secret

from .conftest import send_argv, server_argv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mail"


def test_secret_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_VAR", "from-env")
    assert secrets.resolve(user="u", env="PW_VAR").reveal() == "from-env"  # type: ignore[union-attr]
    cmd = f"{sys.executable} -c \"print('from-command'); print('second line ignored')\""
    assert secrets.from_command(cmd).reveal() == "from-command"
    with pytest.raises(UsageError, match="exited with status 3") as info:
        secrets.from_command(f"{sys.executable} -c \"print('leaky-secret'); raise SystemExit(3)\"")
    assert "leaky-secret" not in str(info.value)
    with pytest.raises(UsageError, match="not found"):
        secrets.from_command("/nonexistent/helper")
    assert "from-env" not in repr(Secret("from-env")) and "from-env" not in str(Secret("from-env"))


def test_xoauth2_token_from_command(tmp_path: Path) -> None:
    with CaptureServer(maildir=tmp_path / "m", tls="tls", auth=("robot", "tok-xyz")) as server:
        token_command = f"{sys.executable} -c \"print('tok-xyz')\""
        result = CliRunner().invoke(root, send_argv(*server_argv(server, "tls", password_env=None),
                                                    "--oauth-token-command", token_command, "--json",
                                                    subject="oauth"))
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["ok"] is True
        assert server.messages()[0]["Subject"] == "oauth"


def test_refused_recipient_is_reported_and_exit_1(scripted) -> None:
    server = scripted(rcpt={"gone@example.org": ["550 5.1.1 no such user"]})
    from fivefold.cli import main

    args = [
        "mail",
        "send",
        "--from",
        "a@example.org",
        "--to",
        "ok@example.org",
        "--to",
        "gone@example.org",
        "--subject",
        "s",
        "--server",
        server.address,
    ]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    assert [r.rcpt_tos for r in server.received()] == [("ok@example.org",)]


def test_shipped_examples_validate_and_render(tmp_path: Path) -> None:
    out = tmp_path / "dry"
    result = CliRunner().invoke(
        root,
        [
            "mail",
            "merge",
            "--template",
            str(EXAMPLES / "newsletter"),
            "--csv",
            str(EXAMPLES / "recipients.csv"),
            "--from",
            "Ops <ops@example.org>",
            "--dry-run",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.eml"))
    assert len(files) == 3
    assert b"Subject: =?utf-8?" in files[1].read_bytes()  # Zoë's subject is RFC 2047 encoded


def test_outbox_transitions(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.enqueue([("a", "<1@x>"), ("b", "<2@x>")])
    box.transition(done=None, sending="a")
    box.transition(done=Finished("a", True, ["x@y"], {}, None), sending="b")
    assert box.counts() == {"queued": 0, "sending": 1, "sent": 1, "failed": 0}
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite")
    assert reopened.in_flight_at_start == 1
    assert reopened.rows("sent")[0]["accepted"] == ["x@y"]


def test_password_prompt_on_a_terminal(tls_capture: CaptureServer) -> None:
    import os
    import subprocess

    from .conftest import PASSWORD, USER

    master, slave = os.openpty()
    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fivefold", "mail", "send", "--from", "a@example.org", "--to", "b@example.org",
         "--subject", "prompted", "--server", tls_capture.address, "--security", "starttls",
         "--cafile", str(tls_capture.cafile), "--user", USER],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(src)})
    os.close(slave)
    import select
    import time

    prompt = b""
    try:
        # getpass flushes input typed ahead, so wait for the prompt before typing.
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while b"password for robot" not in prompt and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                prompt += os.read(proc.stderr.fileno(), 4096)
        os.write(master, (PASSWORD + "\n").encode())
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, prompt + err
    assert b"password for robot" in prompt and PASSWORD.encode() not in out + prompt + err
    assert tls_capture.messages()[0]["Subject"] == "prompted"


def test_merge_bad_template_inputs(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("email\na@example.org\n", encoding="utf-8")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "subject.j2").write_text("Hi {{ name", encoding="utf-8")
    (broken / "text.j2").write_text("x", encoding="utf-8")
    no_email = tmp_path / "no_email.csv"
    no_email.write_text("mail,name\na@example.org,A\n", encoding="utf-8")
    cases = [
        (["--template", str(tmp_path / "missing"), "--csv", str(rows)], "not a directory"),
        (["--template", str(broken), "--csv", str(rows)], "subject template, line 1"),
        (["--template", str(EXAMPLES / "newsletter"), "--csv", str(tmp_path / "none.csv")], "cannot read"),
        (["--template", str(EXAMPLES / "newsletter"), "--csv", str(no_email)], "no email column"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(root, ["mail", "merge", *args, "--from", "a@example.org", "--dry-run",
                                           str(tmp_path / "out")])
        assert isinstance(result.exception, UsageError), (args, result.output)
        assert message in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_merge_retry_failed(tmp_path: Path, scripted) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("email,name,month,usage,quota\nann@example.org,Ann,May,1,2\nbob@example.org,Bob,May,1,2\n",
                    encoding="utf-8")
    refusing = scripted(rcpt={"bob@example.org": ["550 5.1.1 unknown"]})
    args = ["mail", "merge", "--template", str(EXAMPLES / "newsletter"), "--csv", str(rows), "--from",
            "ops@example.org", "--json"]
    first = CliRunner().invoke(root, [*args, "--server", refusing.address])
    assert "1 message(s) failed" in str(first.exception)
    accepting = scripted()
    skipped = CliRunner().invoke(root, [*args, "--server", accepting.address])
    assert json.loads(skipped.output)["skipped"] == 2 and accepting.received() == []
    retried = CliRunner().invoke(root, [*args, "--server", accepting.address, "--retry-failed"])
    assert retried.exit_code == 0, retried.output
    assert [r.rcpt_tos for r in accepting.received()] == [("bob@example.org",)]
