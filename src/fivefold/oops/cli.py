"""`fivefold oops`: the command-line shell over `fivefold.oops`."""

from __future__ import annotations

import click


@click.group(name="oops")
def cli() -> None:
    """Analyze Linux kernel crash logs: titles, registers, backtraces, symbols."""
