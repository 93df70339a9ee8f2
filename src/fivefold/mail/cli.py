"""`fivefold mail`: the command-line shell over `fivefold.mail`."""

from __future__ import annotations

import click


@click.group(name="mail")
def cli() -> None:
    """Compose and send email over SMTP; run a local capture server."""
