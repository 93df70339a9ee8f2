"""The root command: help, version, lazy imports, missing extras, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import fivefold
from fivefold import TOOLS
from fivefold._common.errors import FivefoldError, MissingExtraError, UsageError
from fivefold._common.settings import env_settings, tool_settings
from fivefold.cli import root

SRC = Path(__file__).resolve().parents[1] / "src"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fivefold", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fivefold, version {fivefold.__version__}"


def test_help_lists_every_tool_and_demo() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for tool in (*TOOLS, "demo"):
        assert f"  {tool} " in result.stdout


def test_help_imports_no_tool_and_no_heavy_dependency() -> None:
    code = (
        "import sys; from fivefold.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'aiohttp', 'numpy', 'aiosmtplib', 'capstone', 'rich', 'jinja2') "
        "if m in sys.modules]\n"
        "tools = [m for m in sys.modules if m.startswith('fivefold.') and m.split('.')[1] in "
        "('mail','crawl','oops','grad','video')]\n"
        "print('HEAVY', heavy, 'TOOLS', tools, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60)
    assert "HEAVY [] TOOLS []" in result.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_group_help(tool: str) -> None:
    result = run_cli(tool, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: fivefold {tool}" in result.stdout


def test_importing_one_tool_does_not_import_another_tools_dependencies() -> None:
    code = (
        "import sys\n"
        "import fivefold.grad, fivefold.oops, fivefold.mail, fivefold.crawl\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    assert result.stdout.strip().endswith("NO-TORCH"), result.stderr


def test_missing_extra_message(tmp_path: Path) -> None:
    # A module named like a required one but broken makes find_spec fail the same way
    # a missing package does; simpler: hide torch by shadowing it with a stub that
    # find_spec cannot resolve (a namespace without __init__ resolves, so use a meta path block).
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    result = run_cli("video", "--help", env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{SRC}"})
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "fivefold video: needs the 'video' extra: pip install 'fivefold[video]'"
    )
    assert "Traceback" not in result.stderr


def test_unknown_command_is_usage_error() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr


def test_demo_rejects_unknown_tool() -> None:
    result = run_cli("demo", "--only", "nope")
    assert result.returncode == 2
    assert "unknown tool(s): nope" in result.stderr


def test_fivefold_error_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from fivefold import cli as cli_module

    @root.command("boom-test")
    def boom() -> None:
        raise FivefoldError("first line\nsecond line")

    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main(["boom-test"])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err == "fivefold: first line second line\n"
    finally:
        root.commands.pop("boom-test")


def test_usage_error_exit_2_and_debug_shows_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from fivefold import cli as cli_module

    @root.command("bad-test")
    def bad() -> None:
        raise UsageError("bad value")

    @root.command("bug-test")
    def bug() -> None:
        raise RuntimeError("kaboom")

    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main(["bad-test"])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == "fivefold: bad value\n"

        with pytest.raises(SystemExit) as exit_info:
            cli_module.main(["bug-test"])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "internal error: RuntimeError: kaboom" in err

        with pytest.raises(SystemExit):
            cli_module.main(["--debug", "bug-test"])
        assert "Traceback (most recent call last)" in capsys.readouterr().err
    finally:
        root.commands.pop("bad-test")
        root.commands.pop("bug-test")


def test_missing_extra_error_text() -> None:
    assert str(MissingExtraError("crawl")) == "needs the 'crawl' extra: pip install 'fivefold[crawl]'"


def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "fivefold.toml"
    config.write_text('[mail]\nserver = "toml:25"\ntimeout = 10\nuser = "toml"\n')
    env = {"FIVEFOLD_MAIL_SERVER": "env:25", "FIVEFOLD_MAIL_USER": "env", "OTHER": "x"}
    assert env_settings("mail", env) == {"server": "env:25", "user": "env"}
    merged = tool_settings("mail", {"user": "flag", "server": None}, path=config, environ=env)
    assert merged == {"server": "env:25", "timeout": 10, "user": "flag"}


def test_settings_invalid_toml_is_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "fivefold.toml"
    config.write_text("[mail\n")
    with pytest.raises(UsageError, match="invalid TOML"):
        tool_settings("mail", path=config, environ={})


def test_json_output_helper() -> None:
    from fivefold._common.jsonout import dumps

    assert json.loads(dumps({"path": Path("/x"), "s": {2, 1}})) == {"path": "/x", "s": [1, 2]}
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_click_is_the_cli_library() -> None:
    assert isinstance(root, click.Group)
