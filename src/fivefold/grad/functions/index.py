"""Indexing: basic and advanced ``__getitem__``, gather, index_select, masked_fill, one_hot.

Basic indexing (ints, slices, None, ...) returns a view sharing the version counter;
advanced indexing (integer/boolean arrays) copies, and its gradient is scattered back
with accumulation so repeated indices add up, as in torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.functions.common import record
from fivefold.grad.functions.shape import view_of
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _dim, _wrap

_BASIC = (int, slice, type(None), type(Ellipsis))


def normalise_key(key: Any) -> tuple[Any, bool]:
    """The key with tensors/lists turned into arrays, and whether it is basic (a view)."""
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    basic = True
    for p in parts:
        if isinstance(p, Tensor):
            p = p._data
            if p.ndim == 0 and p.dtype.kind in "iu":
                p = int(p)
        elif isinstance(p, (list, np.ndarray, bool, np.bool_)):
            p = np.asarray(p)
        elif isinstance(p, np.integer):
            p = int(p)
        if not isinstance(p, _BASIC):
            basic = False
        out.append(p)
    return tuple(out), basic


def _index_error(exc: IndexError) -> IndexError:
    return IndexError(str(exc).replace(" axis ", " dimension "))


class IndexBackward0(Node):
    __slots__ = ("accumulate", "dtype", "key", "shape")
    accumulate: Any
    dtype: Any
    key: Any
    shape: Any
    _saves = True

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.index_put(self.shape, self.dtype, self.key, g, self.accumulate),)

    def _release(self) -> None:
        self.key = None


class SelectBackward0(IndexBackward0):
    __slots__ = ()
    _saves = False


class SliceBackward0(IndexBackward0):
    __slots__ = ()
    _saves = False


def _basic_name(key: tuple[Any, ...]) -> type[IndexBackward0]:
    last = [p for p in key if p is not Ellipsis]
    if not last:
        return SliceBackward0
    tail = last[-1]
    if isinstance(tail, int):
        return SelectBackward0
    if tail is None and all(p is None or p == slice(None) for p in last):
        from fivefold.grad.functions.shape import UnsqueezeBackward0

        return UnsqueezeBackward0  # type: ignore[return-value]
    return SliceBackward0


def getitem(a: Tensor, key: Any) -> Tensor:
    k, basic = normalise_key(key)
    x = a._data
    try:
        arr = x[k]
    except IndexError as exc:
        raise _index_error(exc) from None
    if basic:
        if STATE.enabled and a._rg:
            cls = _basic_name(k)
            if cls.__name__ == "UnsqueezeBackward0":
                node: Any = cls((edge(a),))
                node.shape = x.shape
            else:
                node = cls((edge(a),))
                node.shape, node.dtype, node.key, node.accumulate = x.shape, x.dtype, k, False
            return view_of(a, arr, node)
        return view_of(a, arr, None)
    return record(arr, a, IndexBackward0, shape=x.shape, dtype=x.dtype, key=k, accumulate=True)


def getitem_raw_key(g: Tensor, key: Any) -> Tensor:
    """``g[key]`` for an already-normalised key (used by double backward)."""
    x = g._data
    return record(x[key], g, IndexBackward0, shape=x.shape, dtype=x.dtype, key=key, accumulate=True)


class IndexPutZerosBackward(Node):
    """The op ``zeros(shape).index_put_(key, g)``, differentiable in ``g`` (double backward)."""

    __slots__ = ("key",)
    key: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.getitem(g, self.key),)


def index_put_zeros(shape: tuple[int, ...], dtype: Any, key: Any, g: Tensor, accumulate: bool) -> Tensor:
    out = np.zeros(shape, dtype)
    if accumulate:
        np.add.at(out, key, g._data)
    else:
        out[key] = g._data
    return record(out, g, IndexPutZerosBackward, key=key)


class GatherBackward0(Node):
    __slots__ = ("dtype", "key", "shape")
    dtype: Any
    key: Any
    shape: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.index_put(self.shape, self.dtype, self.key, g, True),)

    def _release(self) -> None:
        self.key = None


def _along_key(idx: Any, axis: int) -> tuple[Any, ...]:
    grids = list(np.ix_(*[np.arange(s) for s in idx.shape]))
    grids[axis] = idx
    return tuple(np.broadcast_arrays(*grids))


def gather(a: Tensor, dim: int, index: Tensor) -> Tensor:
    x = a._data
    axis = _dim(dim, x.ndim)
    idx = index._data
    if idx.dtype != D.NP_I64:
        raise RuntimeError("gather(): Expected dtype int64 for index")
    key = _along_key(idx, axis)
    try:
        out = x[key]
    except IndexError as exc:
        raise RuntimeError(f"index {exc} is out of bounds") from None
    return record(out, a, GatherBackward0, shape=x.shape, dtype=x.dtype, key=key)


class IndexSelectBackward0(GatherBackward0):
    __slots__ = ()


def index_select(a: Tensor, dim: int, index: Tensor) -> Tensor:
    x = a._data
    axis = _dim(dim, x.ndim)
    key = (slice(None),) * axis + (index._data,)
    return record(x[key], a, IndexSelectBackward0, shape=x.shape, dtype=x.dtype, key=key)


class MaskedFillBackward0(Node):
    __slots__ = ("mask",)
    mask: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.where(self.mask, g * 0, g),)

    def _release(self) -> None:
        self.mask = None


def masked_fill(a: Tensor, mask: Any, value: Any) -> Tensor:
    x = a._data
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != D.NP_BOOL:
        raise RuntimeError(
            f"masked_fill_ only supports boolean masks, but got mask with dtype "
            f"{D.TORCH_NAME[str(m.dtype)].lower()}"
        )
    v = value._data if isinstance(value, Tensor) else value
    out = np.where(m, np.asarray(v, x.dtype), x)
    if out.shape != x.shape:
        raise RuntimeError(
            f"The size of tensor a ({x.shape[-1]}) must match the size of tensor b "
            f"({m.shape[-1]}) at non-singleton dimension {out.ndim - 1}"
        )
    return record(out, a, MaskedFillBackward0, mask=np.broadcast_to(m, x.shape))


def one_hot(index: Tensor, num_classes: int = -1) -> Tensor:
    idx = index._data
    if idx.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    n = int(idx.max()) + 1 if num_classes < 0 else num_classes
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise RuntimeError(
            "Class values must be smaller than num_classes."
            if idx.max() >= n
            else "Class values must be non-negative."
        )
    out = np.zeros((*idx.shape, n), D.NP_I64)
    np.put_along_axis(out, idx[..., None].astype(np.intp), 1, axis=-1)
    return _wrap(out, None)


class TrilBackward0(Node):
    __slots__ = ("mask",)
    _saves = False
    mask: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (g * ops.const(self.mask.astype(ops.unwrap(g).dtype)),)


class TriuBackward0(TrilBackward0):
    __slots__ = ()


def _triangle(a: Tensor, diagonal: int, lower: bool) -> Tensor:
    x = a._data
    rows, cols = x.shape[-2], x.shape[-1]
    mask = (
        np.tri(rows, cols, diagonal, dtype=bool) if lower else ~np.tri(rows, cols, diagonal - 1, dtype=bool)
    )
    out = np.where(mask, x, np.zeros((), x.dtype))
    return record(out, a, TrilBackward0 if lower else TriuBackward0, mask=mask)


def tril(a: Tensor, diagonal: int = 0) -> Tensor:
    return _triangle(a, diagonal, True)


def triu(a: Tensor, diagonal: int = 0) -> Tensor:
    return _triangle(a, diagonal, False)


def nonzero(a: Tensor) -> Tensor:
    return _wrap(np.stack(np.nonzero(a._data), axis=-1).astype(D.NP_I64), None)
