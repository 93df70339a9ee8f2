"""`fivefold video`: the command-line shell over `fivefold.video`."""

from __future__ import annotations

import click


@click.group(name="video")
def cli() -> None:
    """Text-to-video latent diffusion transformer: train, sample, evaluate."""


def _register_capabilities() -> None:
    from fivefold.video.cli_capabilities import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_register_capabilities()
