"""The root ``fivefold`` command.

Tool groups are registered lazily: ``fivefold --help`` lists them from the table below
without importing any tool, and ``fivefold mail ...`` imports only ``fivefold.mail.cli``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click

from fivefold import TOOLS, __version__
from fivefold._common.errors import EXIT_FAILED, EXIT_USAGE, FivefoldError, MissingExtraError
from fivefold._common.extras import missing_module, tool_for_module

TOOL_HELP: dict[str, str] = {
    "mail": "Compose and send email over SMTP; run a local capture server.",
    "crawl": "Crawl galleries and download media, politely and resumably.",
    "oops": "Analyze Linux kernel crash logs: titles, registers, backtraces, symbols.",
    "grad": "NumPy reverse-mode autodiff with PyTorch's autograd semantics.",
    "video": "Text-to-video latent diffusion transformer: train, sample, evaluate.",
}


class _State:
    """What the error handler needs to know about the invocation in progress."""

    debug = False
    tool: str | None = None


class LazyGroup(click.Group):
    """A group whose tool sub-groups are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*TOOLS, *super().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in TOOLS:
            return super().get_command(ctx, cmd_name)
        if ctx.resilient_parsing:
            return _placeholder(cmd_name)
        _State.tool = cmd_name
        module = missing_module(cmd_name)
        if module is not None:
            raise MissingExtraError(cmd_name, module)
        import importlib

        tool_cli = importlib.import_module(f"fivefold.{cmd_name}.cli")
        command: click.Command = tool_cli.cli
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, TOOL_HELP[name]) for name in TOOLS]
        for name in super().list_commands(ctx):
            cmd = super().get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(80)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _placeholder(name: str) -> click.Command:
    """Stands in for a tool's group while the root help is being built."""
    return click.Command(name, help=TOOL_HELP[name])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="fivefold")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def root(debug: bool, verbose: int) -> None:
    """fivefold: mail, crawl, oops, grad and video behind one command."""
    from fivefold._common.log import setup_logging

    _State.debug = debug
    setup_logging(verbose, debug=debug)


@root.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("fivefold-demo"),
              show_default=True, help="Where every demo writes its outputs.")
@click.option("--only", default=None, help="Comma-separated tools to run (default: every installed tool).")
def demo(out_dir: Path, only: str | None) -> None:
    """Run each installed tool end to end on embedded defaults."""
    from fivefold._demo import run_demos

    selected = [t.strip() for t in only.split(",")] if only else list(TOOLS)
    unknown = [t for t in selected if t not in TOOLS]
    if unknown:
        raise click.BadParameter(f"unknown tool(s): {', '.join(unknown)}", param_hint="--only")
    failures = run_demos(out_dir, selected, debug=_State.debug)
    if failures:
        raise FivefoldError(f"demo failed for: {', '.join(failures)}")


def _error_prefix() -> str:
    return f"fivefold {_State.tool}" if _State.tool else "fivefold"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps every error to one line on stderr and an exit status."""
    args = sys.argv[1:] if argv is None else argv
    _State.debug = "--debug" in args[: _first_positional(args)]
    _State.tool = None
    try:
        root.main(args=args, prog_name="fivefold", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo(f"{_error_prefix()}: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except FivefoldError as exc:
        _report(exc, str(exc), exc.exit_code)
    except ModuleNotFoundError as exc:
        tool = tool_for_module(exc.name or "") or _State.tool
        if tool is None:
            _report(exc, f"internal error: {exc} (run with --debug for the traceback)", EXIT_FAILED)
        else:
            _State.tool = tool
            missing = MissingExtraError(tool, exc.name)
            _report(exc, str(missing), missing.exit_code)
    except KeyboardInterrupt:
        click.echo(f"{_error_prefix()}: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # last resort: one line instead of a traceback
        _report(exc, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                EXIT_FAILED)
    sys.exit(0)


def _first_positional(args: list[str]) -> int:
    for index, arg in enumerate(args):
        if not arg.startswith("-"):
            return index
    return len(args)


def _report(exc: BaseException, message: str, code: int) -> Any:
    if _State.debug:
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"{_error_prefix()}: {' '.join(message.split())}", err=True)
    sys.exit(code)
