"""``save``/``load`` (pickle, like torch's format in spirit) and the CPU-only ``device``/``cuda`` names."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from fivefold._common.files import atomic_path


def save(obj: Any, f: str | os.PathLike[str]) -> None:
    """Pickles ``obj`` (tensors, state dicts, ...) to ``f``, atomically."""
    with atomic_path(Path(f)) as tmp, tmp.open("wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load(f: str | os.PathLike[str], map_location: Any = None, weights_only: bool = False) -> Any:
    """Reads what :func:`save` wrote (a pickle: load only files you trust)."""
    with open(f, "rb") as fh:
        return pickle.load(fh)


class device:
    """Only the CPU exists here; kept so ``model.to(torch.device("cpu"))`` runs unchanged."""

    def __init__(self, type: str = "cpu", index: int | None = None) -> None:
        if str(type).split(":")[0] != "cpu":
            raise RuntimeError(f"fivefold.grad runs on the CPU only (asked for {type!r})")
        self.type = "cpu"
        self.index = index

    def __repr__(self) -> str:
        return "device(type='cpu')"

    def __str__(self) -> str:
        return "cpu"


class cuda:
    @staticmethod
    def is_available() -> bool:
        return False

    @staticmethod
    def device_count() -> int:
        return 0
