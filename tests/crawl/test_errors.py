"""Bad input: one line on stderr, the right exit status, and the state on disk left as it was."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
from pathlib import Path

from .conftest import cli

FLAGS = ["--follow", "a.detail", "--media", "img.photo", "--title", "h1"]


def _snapshot(out: Path) -> dict[str, object]:
    """Every file's hash, and the state database's rows (its pages may be rearranged)."""
    files: dict[str, object] = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*")) if p.is_file() and ".fivefold-crawl" not in p.parts}
    db = sqlite3.connect(out / ".fivefold-crawl" / "state.sqlite")
    for table in ("urls", "files", "records"):
        files[table] = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    db.close()
    return files


def _one_line(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fivefold crawl: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_input_leaves_state_intact(serve, tmp_path: Path) -> None:
    served = serve(index_pages=1, per_page=3)
    out = tmp_path / "out"
    ok = cli(served.start, *FLAGS, "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "3 files stored" in ok.stdout
    before = _snapshot(out)
    assert "manifest.jsonl" in before and before["urls"] and before["records"]

    rules = tmp_path / "rules.toml"
    rules.write_text('start = "http://127.0.0.1:1/"\n[[page]]\nfollow = "a"\nfolow = "a.detail"\n')
    _one_line(cli("--rules", str(rules), "--out", str(out)), 2, "unknown key 'folow'", "rules.toml")

    _one_line(cli("ftp://example.com/x", *FLAGS, "--out", str(out)), 2, "invalid start URL", "ftp://")

    port = _closed_port()
    _one_line(cli(f"http://127.0.0.1:{port}/", *FLAGS, "--out", str(out), "--retries", "1"), 1,
              "cannot reach start URL", f"127.0.0.1:{port}")

    other = serve(index_pages=1, per_page=3)
    _one_line(cli(other.start, "--follow", "a.nothing", "--media", "img.none", "--out", str(out)), 1,
              "no selector matched anything on the first page", other.start, "a.nothing")
    assert _snapshot(out) == before

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _one_line(cli(served.start, *FLAGS, "--out", str(blocker / "sub")), 1, "is not writable", "a-file")


def test_usage_errors(tmp_path: Path) -> None:
    _one_line(cli("http://127.0.0.1:9/", "--field", "oops"), 2, "NAME=CSS")
    out = str(tmp_path / "o")
    _one_line(cli("http://127.0.0.1:9/", "--name", "{nope}", "--out", out), 2, "unknown field")
    _one_line(cli("http://127.0.0.1:9/", "--max-bytes", "lots", "--out", out), 2, "--max-bytes")
    _one_line(cli("http://127.0.0.1:9/", "--frontier", "mysql://x", "--out", out), 2, "--frontier")
    assert not (tmp_path / "o").exists()


def test_help_and_url_shortcut() -> None:
    result = cli("--help")
    assert result.returncode == 0 and "demo-site" in result.stdout and "run" in result.stdout
    result = cli("run", "--help")
    assert "--frontier" in result.stdout and "--restart" in result.stdout
