"""Logging set-up shared by every tool: one handler on stderr, quiet by default."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(verbosity: int = 0, *, debug: bool = False) -> None:
    """0: warnings, 1: info, 2+ or ``debug``: debug. Idempotent."""
    level = logging.DEBUG if debug or verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    root = logging.getLogger("fivefold")
    root.setLevel(level)
    if not any(getattr(h, "_fivefold", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        handler._fivefold = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("fivefold") else f"fivefold.{name}")
