"""``Parameter``: a leaf tensor a Module registers (requires grad by default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fivefold.grad.tensor import Tensor, _init


class Parameter(Tensor):
    """Shares the given tensor's memory; ``requires_grad`` defaults to True."""

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Parameter:
        p = object.__new__(cls)
        arr = data._data if data is not None else np.empty(0, np.float32)
        _init(p, arr, None)
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        from fivefold.grad.tensor import _wrap

        return (Parameter, (_wrap(self._data, None), self._rg))
