"""`fivefold oops`: the command-line shell over `fivefold.oops`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from fivefold._common.errors import FivefoldError, UsageError

if TYPE_CHECKING:
    from fivefold.oops.crash import Crash
    from fivefold.oops.render import LogResult

FORMATS = ("text", "markdown", "json")


@click.group(name="oops")
def cli() -> None:
    """Analyze Linux kernel crash logs: titles, registers, backtraces, symbols."""


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turn a failure to open or read the log PATH into a one-line error naming it."""
    try:
        yield
    except FileNotFoundError:
        raise FivefoldError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FivefoldError(f"{path}: is a directory, expected a log file") from None
    except OSError as exc:
        raise FivefoldError(f"{path}: cannot read: {exc.strerror}") from None


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with _reading(path):
        return Path(path).read_bytes()


@cli.command()
@click.argument("logs", nargs=-1, required=True)
@click.option(
    "--vmlinux", type=click.Path(path_type=Path), help="Kernel image with symbols (DWARF for file:line)."
)
@click.option("--modules", type=click.Path(path_type=Path), help="Directory holding the modules' .ko files.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--fail-on-crash", is_flag=True, help="Exit 1 when any log holds a crash (for CI).")
@click.option("--mail-to", "mail_to", multiple=True, help="Mail the report (raw logs attached) to ADDR.")
@click.option("--mail-server", default="127.0.0.1:25", show_default=True, help="SMTP server HOST:PORT.")
@click.option("--mail-from", default=None, help="Sender address (default: fivefold-oops@<host>).")
def analyze(
    logs: tuple[str, ...],
    vmlinux: Path | None,
    modules: Path | None,
    fmt: str,
    fail_on_crash: bool,
    mail_to: tuple[str, ...],
    mail_server: str,
    mail_from: str | None,
) -> None:
    """Analyze kernel crash LOGS (``-`` reads stdin): title, blamed frame, registers, backtrace, code."""
    from fivefold._common.jsonout import dumps
    from fivefold.oops.api import analyze as analyze_log
    from fivefold.oops.api import symbolize
    from fivefold.oops.render import LogResult, render_markdown, render_text, to_document

    if modules is not None and vmlinux is None:
        raise UsageError("--modules needs --vmlinux")
    if vmlinux is not None:
        _check_vmlinux(vmlinux)
    raws: list[tuple[str, bytes]] = []
    results: list[LogResult] = []
    for log in logs:
        name = "<stdin>" if log == "-" else log
        if mail_to:
            # The raw log goes along as an attachment, so it is read whole.
            data = _read(log)
            crashes, size = analyze_log(data, name=name), len(data)
            raws.append((name, data))
        else:
            crashes, size = _stream(log, name)
        backend = symbolize(crashes, vmlinux, modules) if vmlinux is not None and crashes else None
        results.append(LogResult(name=name, crashes=crashes, size=size, symbolizer=backend))
    if fmt == "json":
        output = dumps(to_document(results)) + "\n"
    elif fmt == "markdown":
        output = render_markdown(results)
    else:
        output = render_text(results)
    click.echo(output, nl=False)
    found = sum(len(r.crashes) for r in results)
    if mail_to:
        _mail(results, raws, list(mail_to), mail_server, mail_from)
        click.echo(f"mailed the report to {', '.join(mail_to)}", err=True)
    if fail_on_crash and found:
        raise FivefoldError(f"{found} crash(es) found")


def _stream(log: str, name: str) -> tuple[list[Crash], int]:
    """The crashes of one log read as a stream (memory of one report, any log size)."""
    from fivefold.oops.api import decode_code, parse_stream

    class Counting:
        def __init__(self, raw: BinaryIO) -> None:
            self.raw, self.size = raw, 0

        def read(self, n: int = -1) -> bytes:
            data = self.raw.read(n)
            self.size += len(data)
            return data

    with _reading(log):
        handle = sys.stdin.buffer if log == "-" else open(log, "rb")  # noqa: SIM115
        counting = Counting(handle)
        try:
            crashes = list(parse_stream(counting))  # type: ignore[arg-type]
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()
    for crash in crashes:
        crash.source = name
        decode_code(crash)
    return crashes, counting.size


def _check_vmlinux(path: Path) -> None:
    if not path.exists():
        raise FivefoldError(f"{path}: no such file (--vmlinux)")
    if not path.is_file():
        raise FivefoldError(f"{path}: not a file (--vmlinux)")


def _mail(
    results: list[LogResult],
    raws: list[tuple[str, bytes]],
    to: list[str],
    server: str,
    sender: str | None,
) -> None:
    from fivefold.mail import Attachment, Message, send
    from fivefold.oops.render import render_markdown, render_text

    crashes = [c for r in results for c in r.crashes]
    subject = f"[oops] {crashes[0].title}" if crashes else "[oops] no crash found"
    if len(crashes) > 1:
        subject += f" (+{len(crashes) - 1} more)"
    host = os.uname().nodename if hasattr(os, "uname") else "localhost"
    message = Message(
        sender=sender or f"fivefold-oops@{host}",
        to=to,
        subject=subject,
        text=render_text(results),
        attachments=[
            Attachment(
                filename=Path(name).name if name != "<stdin>" else "stdin.log",
                data=data,
                content_type="text/plain",
            )
            for name, data in raws
        ]
        + [
            Attachment(
                filename="report.md", data=render_markdown(results).encode(), content_type="text/markdown"
            )
        ],
    )
    send(message, server=server, timeout=30.0)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the buckets as JSON.")
def buckets(paths: tuple[Path, ...], as_json: bool) -> None:
    """Deduplicate the crashes of many logs (files or directories) into buckets by title."""
    from fivefold._common.jsonout import emit
    from fivefold._common.progress import progress_bar
    from fivefold.oops.api import parse
    from fivefold.oops.buckets import bucketize, log_files, render_buckets

    missing = [p for p in paths if not p.exists()]
    if missing:
        raise FivefoldError(f"{missing[0]}: no such file or directory")
    files = log_files(paths)
    entries: list[tuple[str, float, Crash]] = []
    with progress_bar() as bar:
        task = bar.add_task("parsing logs", total=len(files), rate="") if bar is not None else None
        for path in files:
            data = _read(str(path))
            when = path.stat().st_mtime
            entries.extend((str(path), when, crash) for crash in parse(data))
            if bar is not None and task is not None:
                bar.advance(task)
    result = bucketize(entries)
    if as_json:
        emit({"logs": len(files), "crashes": len(entries), "buckets": [b.to_dict() for b in result]})
    else:
        click.echo(render_buckets(result), nl=False)
