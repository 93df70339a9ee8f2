"""Plumbing shared by several tools: errors, settings, logging, progress, JSON output."""

from fivefold._common.errors import FivefoldError, MissingExtraError, UsageError

__all__ = ["FivefoldError", "MissingExtraError", "UsageError"]
