"""JSON output for ``--json``: one document on stdout, stable key order, no NaN."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, default=_default, indent=indent, ensure_ascii=False, allow_nan=False)


def emit(value: Any) -> None:
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()
