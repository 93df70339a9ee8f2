"""Tensor reprs in torch's style: ``tensor([1., 2.], grad_fn=<MulBackward0>)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fivefold.grad import _dtype as D

if TYPE_CHECKING:
    from fivefold.grad.tensor import Tensor


def _body(arr: np.ndarray[Any, Any]) -> str:
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        integral = finite.size == 0 or bool(np.all(finite == np.round(finite)))
        big = finite.size > 0 and (
            np.abs(finite).max() >= 1e8
            or (np.abs(finite[finite != 0]).min() < 1e-4 if np.any(finite != 0) else False)
        )
        if integral and not big:
            opts: dict[str, Any] = {"precision": 0, "floatmode": "fixed"}
        elif big:
            opts = {"precision": 4, "floatmode": "fixed", "formatter": {"float_kind": lambda v: f"{v:.4e}"}}
        else:
            opts = {"precision": 4, "floatmode": "fixed"}
        text = np.array2string(arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, **opts)
    elif arr.dtype == D.NP_BOOL:
        width = 5 if not arr.all() else 4
        text = np.array2string(
            arr,
            separator=", ",
            prefix="tensor(",
            formatter={"bool": lambda v: ("True" if v else "False").rjust(width)},
        )
    else:
        text = np.array2string(arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3)
    return text


def tensor_repr(t: Tensor) -> str:
    arr = t._data
    parts = [_body(arr)]
    if arr.size == 0:
        parts = ["[]" if arr.ndim == 1 else f"[], size=({', '.join(map(str, arr.shape))},)"]
    if arr.dtype not in (D.default_float(), D.NP_I64, D.NP_BOOL):
        parts.append(f"dtype={D.BY_NP[arr.dtype]!r}")
    if t.grad_fn is not None:
        parts.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._rg:
        parts.append("requires_grad=True")
    return "tensor(" + ", ".join(parts) + ")"
