"""Settings from ``fivefold.toml`` and ``FIVEFOLD_*`` environment variables.

Precedence, lowest first: the tool's defaults, ``fivefold.toml`` (the file named by
``FIVEFOLD_CONFIG``, else ``./fivefold.toml``), environment variables, then command-line
flags. Each tool reads its own table: ``[mail]`` for ``fivefold.mail`` and so on;
``FIVEFOLD_MAIL_SERVER=host:25`` sets ``[mail] server``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fivefold._common.errors import UsageError

CONFIG_ENV = "FIVEFOLD_CONFIG"
DEFAULT_CONFIG = "fivefold.toml"


def config_path() -> Path | None:
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise UsageError(f"{CONFIG_ENV} names {path}, which is not a file")
        return path
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The whole TOML document, or an empty dict when there is no config file."""
    path = path if path is not None else config_path()
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None


def env_settings(tool: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``FIVEFOLD_<TOOL>_<KEY>=value`` as ``{"key": "value"}``."""
    environ = os.environ if environ is None else environ
    prefix = f"FIVEFOLD_{tool.upper()}_"
    return {
        key[len(prefix) :].lower(): value for key, value in environ.items() if key.startswith(prefix)
    }


def tool_settings(
    tool: str,
    flags: Mapping[str, Any] | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merged settings for one tool; flags whose value is ``None`` do not override."""
    table = load_config(path).get(tool, {})
    if not isinstance(table, dict):
        raise UsageError(f"fivefold.toml: [{tool}] must be a table")
    merged: dict[str, Any] = dict(table)
    merged.update(env_settings(tool, environ))
    if flags:
        merged.update({key: value for key, value in flags.items() if value is not None})
    return merged


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def yes_no(value: Any) -> bool:
    """A boolean setting from TOML (a bool) or the environment (text); ValueError for anything else,
    so that a typo such as ``insecure = "ture"`` is reported instead of read as false."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected yes/no, true/false, on/off or 1/0, got {value!r}")
