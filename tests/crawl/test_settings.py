"""[crawl] in fivefold.toml and FIVEFOLD_CRAWL_* as defaults for the run options; flags win."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fivefold._common.errors import UsageError
from fivefold.crawl.settings import crawl_settings, options_from

from .conftest import SRC, check_complete


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fivefold.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_flags_over_env_over_toml(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[crawl]\nconcurrency = 32\nper_host = 4\ndelay = 0.5\nloop = "asyncio"\n'
                             'fsync = true\n')
    environ = {"FIVEFOLD_CRAWL_PER_HOST": "6", "FIVEFOLD_CRAWL_DELAY": "0.25"}
    merged = crawl_settings({"delay": 0.1, "concurrency": None}, config=config, environ=environ)
    options = options_from(merged, restart=True)
    assert options.concurrency == 32  # toml (the flag was not given)
    assert options.per_host == 6  # env over toml
    assert options.delay == 0.1  # flag over env
    assert options.loop == "asyncio" and options.fsync is True and options.restart is True
    assert options_from(crawl_settings({}, config=None, environ={})).concurrency == 16  # built-in default


@pytest.mark.parametrize(("text", "environ", "message"), [
    ("[crawl]\nconcurency = 4\n", {}, "unknown key 'concurency'"),
    ("[crawl]\nconcurrency = 0\n", {}, "at least 1"),
    ("[crawl]\nconcurrency = 'many'\n", {}, "bad value"),
    ("", {"FIVEFOLD_CRAWL_FSYNC": "maybe"}, "FIVEFOLD_CRAWL_FSYNC"),
])
def test_bad_settings_are_usage_errors(tmp_path: Path, text: str, environ: dict[str, str],
                                       message: str) -> None:
    with pytest.raises(UsageError, match=message):
        crawl_settings({}, config=_toml(tmp_path, text), environ=environ)


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FIVEFOLD_")}
    environ |= {"PYTHONPATH": str(SRC), **env}
    return subprocess.run([sys.executable, "-m", "fivefold", "crawl", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=120)


def test_toml_out_and_options_reach_the_cli(serve, tmp_path: Path) -> None:
    served = serve(index_pages=1, per_page=4)
    _toml(tmp_path, '[crawl]\nout = "from-toml"\nconcurrency = 2\nloop = "asyncio"\n')
    result = _cli([served.start, "--follow", "a.detail", "--media", "img.photo", "--title", "h1", "--json"],
                  tmp_path)
    assert result.returncode == 0, result.stderr
    check_complete(tmp_path / "from-toml", served.site)
    # A flag beats the file; a bad value in the file stops before anything is written.
    result = _cli([served.start, "--follow", "a.detail", "--media", "img.photo", "--out", "from-flag"],
                  tmp_path, FIVEFOLD_CRAWL_LOOP="trio")
    assert result.returncode == 2 and "--loop" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "from-flag").exists()


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "crawl" / "fivefold.toml"
    options = options_from(crawl_settings({}, config=example, environ={}))
    assert options.concurrency == 32 and options.per_host == 8 and options.loop == "auto"
