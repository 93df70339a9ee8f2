"""`fivefold grad`: the command-line shell over `fivefold.grad`."""

from __future__ import annotations

import click


@click.group(name="grad")
def cli() -> None:
    """NumPy reverse-mode autodiff with PyTorch's autograd semantics."""
