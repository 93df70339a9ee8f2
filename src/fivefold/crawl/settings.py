"""Run defaults from ``[crawl]`` in fivefold.toml and ``FIVEFOLD_CRAWL_*`` variables.

Precedence, lowest first: :class:`Options` defaults, ``[crawl]``, environment variables,
command-line flags (see :mod:`fivefold._common.settings`). Only how-to-crawl settings live
here; what to crawl belongs in a rules file (``--rules``). Unknown keys are errors, as in
rules files: a typo would otherwise be ignored in silence.

```toml
[crawl]
out = "gallery"
concurrency = 32
per_host = 8
delay = 0.5
frontier = "redis://127.0.0.1:6379/0"
loop = "asyncio"
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from fivefold._common.errors import UsageError
from fivefold._common.settings import tool_settings, yes_no
from fivefold.crawl.config import Options


def _number(kind: Callable[[str], Any], low: float) -> Callable[[str, Any], Any]:
    def convert(key: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(value)
        number = kind(str(value))
        if number < low:
            raise UsageError(f"[crawl] {key}: must be at least {low}, got {value!r}")
        return number

    return convert


def _flag(key: str, value: Any) -> bool:
    return yes_no(value)


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(value)
    return value


_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "out": _text, "concurrency": _number(int, 1), "per_host": _number(int, 1),
    "delay": _number(float, 0), "retries": _number(int, 0), "timeout": _number(float, 0.1),
    "frontier": _text, "crawl_id": _text, "fsync": _flag, "loop": _text, "lease": _number(float, 1),
}


def crawl_settings(flags: Mapping[str, Any], *, config: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merged settings: flags whose value is ``None`` leave the file's or environment's value."""
    merged = tool_settings("crawl", flags, path=config, environ=environ)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        convert = _KEYS.get(key)
        if convert is None:
            raise UsageError(f"fivefold.toml [crawl] or FIVEFOLD_CRAWL_{key.upper()}: unknown key {key!r} "
                             f"(known: {', '.join(sorted(_KEYS))})")
        try:
            out[key] = convert(key, value)
        except (TypeError, ValueError):
            raise UsageError(f"fivefold.toml [crawl] or FIVEFOLD_CRAWL_{key.upper()}: bad value {value!r} "
                             f"for {key}") from None
    return out


def options_from(settings: Mapping[str, Any], **overrides: Any) -> Options:
    """:class:`Options` from merged settings (keys that are not options, like ``out``, are skipped)."""
    names = {f.name for f in fields(Options)}
    return Options(**{k: v for k, v in settings.items() if k in names}, **overrides)
