"""Commands for the Sora capabilities (animate, extend, edit, ...); filled by part 2."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
