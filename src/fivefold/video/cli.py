"""`fivefold video`: the command-line shell over `fivefold.video`."""

from __future__ import annotations

import click


@click.group(name="video")
def cli() -> None:
    """Text-to-video latent diffusion transformer: train, sample, evaluate."""
