"""Factory functions with torch's names and dtype inference: tensor, zeros, randn, arange, ...

Python floats become the default dtype (float32) and ints int64, as in torch; NumPy
arrays and scalars keep their dtype. Random tensors come from one NumPy generator that
``manual_seed`` resets (its streams are NumPy's, not torch's).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap


def _infer_array(data: Any, dtype: Any) -> np.ndarray[Any, Any]:
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        arr = np.array(_to_nested(data))
    else:
        arr = np.array(data)
    if dtype is not None:
        return np.array(arr, dtype=D.to_np(dtype))
    if arr.dtype.kind == "f" and not isinstance(data, np.ndarray | np.generic | Tensor):
        return np.asarray(arr, D.default_float())
    if arr.dtype.kind in "iu" and not isinstance(data, np.ndarray | np.generic | Tensor):
        return np.asarray(arr, D.NP_I64)
    if arr.dtype not in D.CATEGORY:
        raise TypeError(f"can't convert np.ndarray of type {arr.dtype}")
    return np.array(arr, copy=True)


def _flat(data: Any) -> Iterator[Any]:
    for x in data:
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


def _to_nested(data: Any) -> Any:
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_to_nested(x) for x in data]
    return data


def _leaf(arr: np.ndarray[Any, Any], requires_grad: bool) -> Tensor:
    t = _wrap(arr, None)
    if requires_grad:
        if D.CATEGORY.get(arr.dtype, 2) != 2:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        t._rg = True
    return t


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (float32 for Python floats, like torch)."""
    return _leaf(_infer_array(data, dtype), requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or D.to_np(dtype) == data._data.dtype):
        return data
    return tensor(data, dtype=dtype)


def from_numpy(arr: np.ndarray[Any, Any]) -> Tensor:
    """Shares memory with ``arr``, as torch.from_numpy does."""
    return _wrap(arr, None)


def _shape(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


def _fdtype(dtype: Any) -> Any:
    return D.default_float() if dtype is None else D.to_np(dtype)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.zeros(_shape(size), _fdtype(dtype)), requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.ones(_shape(size), _fdtype(dtype)), requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.empty(_shape(size), _fdtype(dtype)), requires_grad)


def full(
    size: Sequence[int],
    fill_value: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    if dtype is None:
        dtype = (
            D.NP_BOOL
            if isinstance(fill_value, bool)
            else (D.NP_I64 if isinstance(fill_value, int) else D.default_float())
        )
    return _leaf(np.full(tuple(size), fill_value, D.to_np(dtype)), requires_grad)


def _like(t: Tensor, dtype: Any) -> Any:
    return t._data.dtype if dtype is None else D.to_np(dtype)


def zeros_like(t: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.zeros(t._data.shape, _like(t, dtype)), requires_grad)


def ones_like(t: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.ones(t._data.shape, _like(t, dtype)), requires_grad)


def full_like(t: Tensor, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.full(t._data.shape, fill_value, _like(t, dtype)), requires_grad)


def empty_like(t: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.empty(t._data.shape, _like(t, dtype)), requires_grad)


class _RNG:
    gen = np.random.default_rng(0)


def manual_seed(seed: int) -> _RNG:
    """Seeds this package's generator (NumPy's PCG64: the streams differ from torch's)."""
    _RNG.gen = np.random.default_rng(int(seed))
    return _RNG()


def default_generator() -> np.random.Generator:
    return _RNG.gen


def randn(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, generator: Any = None
) -> Tensor:
    arr = _RNG.gen.standard_normal(_shape(size)).astype(_fdtype(dtype))
    return _leaf(arr, requires_grad)


def rand(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, generator: Any = None
) -> Tensor:
    arr = _RNG.gen.random(_shape(size)).astype(_fdtype(dtype))
    return _leaf(arr, requires_grad)


def randn_like(t: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return randn(*t._data.shape, dtype=_like(t, dtype), requires_grad=requires_grad)


def rand_like(t: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return rand(*t._data.shape, dtype=_like(t, dtype), requires_grad=requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] = (), *, dtype: Any = None) -> Tensor:
    if high is None:
        low, high = 0, low
    arr = _RNG.gen.integers(low, high, tuple(size)).astype(D.NP_I64 if dtype is None else D.to_np(dtype))
    return _wrap(arr, None)


def randperm(n: int, *, dtype: Any = None) -> Tensor:
    return _wrap(_RNG.gen.permutation(n).astype(D.NP_I64 if dtype is None else D.to_np(dtype)), None)


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = D.default_float() if is_float else D.NP_I64
    return _leaf(np.arange(start, end, step).astype(D.to_np(dtype)), requires_grad)


def linspace(
    start: float, end: float, steps: int, *, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    return _leaf(np.linspace(start, end, steps).astype(_fdtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.eye(n, m, dtype=_fdtype(dtype)), requires_grad)


def is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


def is_grad_enabled() -> bool:
    return STATE.enabled
