"""``fivefold demo``: each installed tool's ``demo(out_dir)`` in turn.

A tool takes part by defining ``fivefold.<tool>.demo.demo(out_dir: Path) -> dict[str, str]``,
which returns what it produced (label -> path or figure). A tool without its extra is
skipped with a note; a tool whose demo fails is reported and the others still run.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
import traceback
from pathlib import Path

import click

from fivefold._common.errors import FivefoldError
from fivefold._common.extras import missing_module


def run_demos(out_dir: Path, tools: list[str], *, debug: bool = False) -> list[str]:
    """Runs the demos; returns the tools whose demo failed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for tool in tools:
        missing = missing_module(tool)
        if missing is not None:
            click.echo(f"[{tool}] skipped: needs the '{tool}' extra (pip install 'fivefold[{tool}]')")
            continue
        if importlib.util.find_spec(f"fivefold.{tool}.demo") is None:
            click.echo(f"[{tool}] skipped: no demo yet")
            continue
        click.echo(f"[{tool}] running ...")
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"fivefold.{tool}.demo")
            outputs: dict[str, str] = module.demo(out_dir / tool)
        except FivefoldError as exc:
            click.echo(f"[{tool}] failed: {exc}", err=True)
            failures.append(tool)
            continue
        except Exception as exc:  # one tool's bug must not hide the others' results
            if debug:
                traceback.print_exc()
            click.echo(f"[{tool}] failed: {type(exc).__name__}: {exc}", err=True)
            failures.append(tool)
            continue
        elapsed = time.perf_counter() - started
        for label, value in outputs.items():
            click.echo(f"[{tool}] {label}: {value}")
        click.echo(f"[{tool}] done in {elapsed:.1f} s")
    click.echo(f"demo outputs under {out_dir.resolve()}")
    return failures
