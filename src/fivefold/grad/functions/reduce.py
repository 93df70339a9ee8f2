"""Reductions with ``dim``/``keepdim``: sum, mean, var, std, max, min, amax, amin, prod, logsumexp."""

from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.functions.common import record
from fivefold.grad.graph import Node
from fivefold.grad.tensor import Tensor, _dim, _wrap

_add_reduce: Any = np.add.reduce  # (typed loosely: NumPy's stubs reject a non-literal keepdims)
MaxResult = namedtuple("MaxResult", ["values", "indices"])


def axes_of(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """Normalised reduction axes, or None for all of them."""
    if dim is None:
        return None
    if isinstance(dim, int):
        return (_dim(dim, ndim),) if ndim else ()
    if len(dim) == 0:
        return None
    return tuple(sorted(_dim(int(d), ndim) for d in dim)) if ndim else ()


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape left after reducing ``axes`` without keepdim."""
    return tuple(s for i, s in enumerate(shape) if axes is not None and i not in axes)


def _keep_dims(g: Any, shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdim: bool, ops: Any) -> Any:
    """A reduction's gradient with its reduced dims back as 1s, so it broadcasts against the input."""
    return g if keepdim else ops.reshape(g, _kept_shape(shape, axes))


def _back_expand(
    g: Any, shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdim: bool, ops: Any
) -> Any:
    return ops.expand(_keep_dims(g, shape, axes, keepdim, ops), shape)


class SumBackward0(Node):
    __slots__ = ("axes", "keepdim", "shape")
    axes: Any
    keepdim: Any
    shape: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (_back_expand(g, self.shape, self.axes, self.keepdim, ops),)


class SumBackward1(SumBackward0):
    __slots__ = ()


def sum(a: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None, axis: Any = None) -> Tensor:
    if axis is not None:
        dim = axis
    x = a._data
    axes = axes_of(dim, x.ndim)
    if dtype is not None:
        x = x.astype(D.to_np(dtype))
    elif x.dtype.kind in "biu":
        x = x.astype(D.NP_I64)
    out = _add_reduce(x, axis=axes, keepdims=keepdim)
    if not isinstance(out, np.ndarray):
        out = np.asarray(out, x.dtype)
    node_type = SumBackward0 if dim is None else SumBackward1
    return record(out, a, node_type, shape=a._data.shape, axes=axes, keepdim=keepdim)


class MeanBackward0(Node):
    __slots__ = ("axes", "count", "keepdim", "shape")
    axes: Any
    count: Any
    keepdim: Any
    shape: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (_back_expand(g / self.count, self.shape, self.axes, self.keepdim, ops),)


class MeanBackward1(MeanBackward0):
    __slots__ = ()


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    if axes is None:
        return int(np.prod(shape)) if shape else 1
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def mean(a: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    x = a._data
    if dtype is not None:
        x = x.astype(D.to_np(dtype))
    if x.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {D.TORCH_NAME[str(x.dtype)]}"
        )
    axes = axes_of(dim, x.ndim)
    count = _count(x.shape, axes)
    out = np.asarray(_add_reduce(x, axis=axes, keepdims=keepdim) / count, x.dtype)
    node_type = MeanBackward0 if dim is None else MeanBackward1
    return record(out, a, node_type, shape=x.shape, axes=axes, keepdim=keepdim, count=count)


class VarBackward0(Node):
    __slots__ = ("axes", "correction", "keepdim", "std", "x")
    axes: Any
    correction: Any
    keepdim: Any
    std: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        x = ops.v(self.x)
        n = _count(tuple(ops.unwrap(x).shape), self.axes)
        centred = x - ops.sum(x, self.axes, True) / n
        g = _keep_dims(g, tuple(ops.unwrap(x).shape), self.axes, self.keepdim, ops)
        denom = builtins.max(n - self.correction, 0)
        if self.std is not None:
            s = self.std if ops.raw else ops.sqrt(ops.sum(centred * centred, self.axes, True) / denom)
            if not self.keepdim and ops.raw:
                s = s.reshape(_kept_shape(x.shape, self.axes))
            return (g * centred / (s * denom),)
        return (g * centred * (2.0 / denom if denom else float("inf")),)

    def _release(self) -> None:
        self.x = self.std = None


class StdBackward0(VarBackward0):
    __slots__ = ()


def _correction(unbiased: Any, correction: Any) -> float:
    if correction is not None:
        return float(correction)
    if unbiased is None:
        return 1.0
    return 1.0 if unbiased else 0.0


def var(
    a: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None
) -> Tensor:
    return _var_std(a, dim, unbiased, correction, keepdim, False)


def std(
    a: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None
) -> Tensor:
    return _var_std(a, dim, unbiased, correction, keepdim, True)


def _var_std(a: Tensor, dim: Any, unbiased: Any, correction: Any, keepdim: bool, take_sqrt: bool) -> Tensor:
    if isinstance(dim, bool):  # var(x, False): the old positional ``unbiased``
        unbiased, dim = dim, None
    correction = _correction(unbiased, correction)
    x = a._data
    axes = axes_of(dim, x.ndim)
    n = _count(x.shape, axes)
    centred = x - x.mean(axis=axes, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(
            (centred * centred).sum(axis=axes, keepdims=keepdim) / builtins.max(n - correction, 0), x.dtype
        )
        if take_sqrt:
            out = np.sqrt(out)
    node_type = StdBackward0 if take_sqrt else VarBackward0
    std = out if take_sqrt else None
    return record(out, a, node_type, "self", x=a, axes=axes, correction=correction, keepdim=keepdim, std=std)


class MaxBackward1(Node):
    """Full max/min: the gradient is shared evenly between tied maxima (torch's convention)."""

    __slots__ = ("mask",)
    mask: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        mask = self.mask
        return (g * ops.const((mask / mask.sum()).astype(mask.dtype)),)

    def _release(self) -> None:
        self.mask = None


class MinBackward1(MaxBackward1):
    __slots__ = ()


class MaxBackward0(Node):
    """max/min along a dim: the gradient goes to the returned index only."""

    __slots__ = ("axis", "idx", "keepdim", "shape")
    axis: Any
    idx: Any
    keepdim: Any
    shape: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        idx = self.idx if self.keepdim else np.expand_dims(self.idx, self.axis)
        if not self.keepdim:
            g = ops.reshape(g, tuple(idx.shape))
        key = _take_key(self.shape, idx, self.axis)
        return (ops.index_put(self.shape, g.dtype if ops.raw else g._data.dtype, key, g, False),)

    def _release(self) -> None:
        self.idx = None


class MinBackward0(MaxBackward0):
    __slots__ = ()


def _take_key(shape: tuple[int, ...], idx: Any, axis: int) -> tuple[Any, ...]:
    """An advanced-index key addressing ``idx`` (same ndim as shape) along ``axis``."""
    grids = np.ix_(*[np.arange(s) for s in idx.shape])
    key = list(grids)
    key[axis] = idx
    return tuple(np.broadcast_arrays(*key))


def _extreme(a: Tensor, dim: Any, keepdim: bool, take_max: bool) -> Any:
    x = a._data
    if dim is None:
        if x.size == 0:
            raise RuntimeError(
                "max(): Expected reduction dim to be specified for input.numel() == 0. "
                "Specify the reduction dim with the 'dim' argument."
            )
        out = np.asarray(x.max() if take_max else x.min())
        return record(out, a, MaxBackward1 if take_max else MinBackward1, mask=(x == out).astype(x.dtype))
    if isinstance(dim, Tensor):
        return (maximum_ if take_max else minimum_)(a, dim)
    axis = _dim(int(dim), x.ndim)
    if x.ndim == 0:
        return MaxResult(_wrap(x.copy(), None), _wrap(np.asarray(0, D.NP_I64), None))
    idx = np.argmax(x, axis=axis, keepdims=keepdim) if take_max else np.argmin(x, axis=axis, keepdims=keepdim)
    values = np.take_along_axis(x, idx if keepdim else np.expand_dims(idx, axis), axis)
    if not keepdim:
        values = values.squeeze(axis)
    node_type = MaxBackward0 if take_max else MinBackward0
    values_t = record(values, a, node_type, axis=axis, idx=idx, keepdim=keepdim, shape=x.shape)
    return MaxResult(values_t, _wrap(idx.astype(D.NP_I64), None))


def maximum_(a: Tensor, b: Tensor) -> Tensor:
    from fivefold.grad.functions.elementwise import maximum

    return maximum(a, b)


def minimum_(a: Tensor, b: Tensor) -> Tensor:
    from fivefold.grad.functions.elementwise import minimum

    return minimum(a, b)


def max(a: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    return _extreme(a, dim, keepdim, True)


def min(a: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    return _extreme(a, dim, keepdim, False)


class AmaxBackward0(Node):
    __slots__ = ("axes", "keepdim", "mask")
    axes: Any
    keepdim: Any
    mask: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        mask = self.mask
        share = mask / mask.sum(axis=self.axes, keepdims=True)
        g = _keep_dims(g, mask.shape, self.axes, self.keepdim, ops)
        return (g * ops.const(share.astype(mask.dtype)),)

    def _release(self) -> None:
        self.mask = None


class AminBackward0(AmaxBackward0):
    __slots__ = ()


def amax(a: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    return _amax(a, dim, keepdim, True)


def amin(a: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    return _amax(a, dim, keepdim, False)


def _amax(a: Tensor, dim: Any, keepdim: bool, take_max: bool) -> Tensor:
    x = a._data
    axes = axes_of(dim, x.ndim)
    out = np.asarray(x.max(axis=axes, keepdims=True) if take_max else x.min(axis=axes, keepdims=True))
    mask = (x == out).astype(x.dtype)
    if not keepdim:
        out = out.reshape(_reduced_shape(x.shape, axes))
    return record(out, a, AmaxBackward0 if take_max else AminBackward0, axes=axes, keepdim=keepdim, mask=mask)


class ProdBackward0(Node):
    __slots__ = ("axis", "keepdim", "out", "x")
    axis: Any
    keepdim: Any
    out: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        x = ops.v(self.x)
        shape = tuple(ops.unwrap(x).shape)
        axes = None if self.axis is None else (self.axis,)
        g = _keep_dims(g, shape, axes, self.keepdim, ops)
        if ops.raw:
            return (g * _prod_others(x, self.axis),)
        out = ops.reshape(self.out_tensor(x), _kept_shape(shape, axes))
        return (g * out / x,)

    def out_tensor(self, x: Any) -> Any:
        return x.prod(self.axis, keepdim=True) if self.axis is not None else x.prod()

    def _release(self) -> None:
        self.x = self.out = None


class ProdBackward1(ProdBackward0):
    __slots__ = ()


def _prod_others(x: Any, axis: int | None) -> Any:
    """The product of all other elements (along ``axis``), exact even with zeros."""
    shape = x.shape
    if axis is None:
        flat = x.reshape(-1)
        axis_, y = 0, flat
    else:
        axis_, y = axis, x
    ones_shape = list(y.shape)
    ones_shape[axis_] = 1
    ones = np.ones(ones_shape, x.dtype)
    left = np.concatenate([ones, np.cumprod(y, axis=axis_)], axis=axis_)
    right = np.flip(np.cumprod(np.flip(y, axis_), axis=axis_), axis_)
    right = np.concatenate([right, ones], axis=axis_)
    n = y.shape[axis_]
    res = np.take(left, np.arange(n), axis=axis_) * np.take(right, np.arange(1, n + 1), axis=axis_)
    return res.reshape(shape)


def prod(a: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    x = a._data if dtype is None else a._data.astype(D.to_np(dtype))
    if x.dtype.kind in "biu":
        x = x.astype(D.NP_I64)
    axis = None if dim is None else _dim(int(dim), x.ndim)
    out = np.asarray(x.prod(axis=axis, keepdims=keepdim and axis is not None), x.dtype)
    node_type = ProdBackward0 if dim is None else ProdBackward1
    return record(out, a, node_type, "self", x=a, axis=axis, keepdim=keepdim)


class LogsumexpBackward0(Node):
    __slots__ = ("axes", "keepdim", "out", "x")
    axes: Any
    keepdim: Any
    out: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        x = ops.v(self.x)
        shape = tuple(ops.unwrap(x).shape)
        out = self.out if ops.raw else logsumexp(x, self.axes, True)
        g = _keep_dims(g, shape, self.axes, self.keepdim, ops)
        if ops.raw:
            out = _keep_dims(out, shape, self.axes, self.keepdim, ops)
        return (g * ops.exp(x - out),)

    def _release(self) -> None:
        self.x = self.out = None


def logsumexp(a: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    x = a._data
    if x.dtype.kind != "f":
        x = x.astype(D.default_float())
    axes = axes_of(dim, x.ndim)
    m = x.max(axis=axes, keepdims=True) if x.size else np.zeros(_kept_shape(x.shape, axes), x.dtype)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.exp(x - m).sum(axis=axes, keepdims=True)) + m
    if not keepdim:
        out = out.reshape(_reduced_shape(x.shape, axes))
    out = np.asarray(out, x.dtype)
    return record(out, a, LogsumexpBackward0, "self", x=a, axes=axes, keepdim=keepdim, out=out)


def _arg_extreme(a: Tensor, dim: Any, keepdim: bool, find: Any) -> Tensor:
    x = a._data
    if dim is None:
        return _wrap(np.asarray(find(x), D.NP_I64), None)
    return _wrap(find(x, axis=_dim(int(dim), x.ndim), keepdims=keepdim).astype(D.NP_I64), None)


def argmax(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(a, dim, keepdim, np.argmax)


def argmin(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(a, dim, keepdim, np.argmin)


def all(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _wrap(np.asarray(a._data.all(axis=axes_of(dim, a._data.ndim), keepdims=keepdim)), None)


def any(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _wrap(np.asarray(a._data.any(axis=axes_of(dim, a._data.ndim), keepdims=keepdim)), None)
