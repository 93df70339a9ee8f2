"""The two vocabularies a backward formula is written against.

``NP`` works on bare arrays (plain backward: no graph, no tensor objects); ``TENSOR``
works on tensors with grad mode on, so the same formula records a graph when
``create_graph=True`` and higher-order gradients come for free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fivefold.grad.tensor import Tensor, _wrap

_ERF: list[Any] = []


def _erf_impl() -> Any:
    """SciPy's vectorised erf when installed (imported on first use: it is heavy), else math.erf."""
    if not _ERF:
        try:
            from scipy.special import erf as vectorised
        except ImportError:  # pragma: no cover - SciPy comes with scikit-learn in dev installs
            import math

            per_element = np.frompyfunc(math.erf, 1, 1)

            def vectorised(x: Any) -> Any:
                return np.asarray(per_element(x), dtype=np.asarray(x).dtype)

        _ERF.append(vectorised)
    return _ERF[0]


def erf(x: Any) -> Any:
    out = _erf_impl()(x)
    return out.astype(x.dtype, copy=False) if hasattr(x, "dtype") else out


def sum_to(g: Any, shape: tuple[int, ...], ops: Any) -> Any:
    """Sums a broadcast gradient back down to ``shape``: over the leading dimensions broadcasting
    added, then over those that were 1 (arrays with ``NP``; recorded tensors with ``TENSOR``)."""
    lead = g.ndim - len(shape)
    if lead:
        g = ops.sum(g, tuple(range(lead)))
    ones = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if ones:
        g = ops.sum(g, ones, True)
    return g


class _NP:
    """Formulas on NumPy arrays."""

    raw = True

    @staticmethod
    def v(t: Any) -> Any:
        return t._data if isinstance(t, Tensor) else t

    @staticmethod
    def wrap(g: Any) -> Any:
        return None if g is None else _wrap(g, None)

    @staticmethod
    def unwrap(t: Any) -> Any:
        return None if t is None else (t._data if isinstance(t, Tensor) else np.asarray(t))

    @staticmethod
    def const(a: Any) -> Any:
        return a

    @staticmethod
    def fix(g: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        if g.shape != shape:
            g = sum_to(g, shape, _NP)
        if g.dtype is not dtype:
            g = g.astype(dtype)
        return g

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    tanh = staticmethod(np.tanh)
    sign = staticmethod(np.sign)
    erf = staticmethod(erf)
    where = staticmethod(np.where)
    matmul = staticmethod(np.matmul)

    @staticmethod
    def sigmoid(x: Any) -> Any:
        return 0.5 * (1 + np.tanh(0.5 * x))

    @staticmethod
    def swap(a: Any) -> Any:
        return a.swapaxes(-1, -2)

    @staticmethod
    def sum(g: Any, axis: Any, keepdims: bool = False) -> Any:
        return g.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def reshape(g: Any, shape: tuple[int, ...]) -> Any:
        return g.reshape(shape)

    @staticmethod
    def expand(g: Any, shape: tuple[int, ...]) -> Any:
        out = np.empty(shape, g.dtype)
        out[...] = g
        return out

    @staticmethod
    def permute(g: Any, axes: tuple[int, ...]) -> Any:
        return g.transpose(axes)

    @staticmethod
    def cast(g: Any, dtype: Any) -> Any:
        return g.astype(dtype)

    @staticmethod
    def index_put(shape: tuple[int, ...], dtype: Any, key: Any, g: Any, accumulate: bool) -> Any:
        out = np.zeros(shape, dtype)
        if accumulate:
            np.add.at(out, key, g)
        else:
            out[key] = g
        return out

    @staticmethod
    def getitem(g: Any, key: Any) -> Any:
        return g[key]

    @staticmethod
    def cat(gs: list[Any], axis: int) -> Any:
        return np.concatenate(gs, axis=axis)

    @staticmethod
    def split_at(g: Any, sizes: list[int], axis: int) -> list[Any]:
        return np.split(g, np.cumsum(sizes)[:-1], axis=axis)


class _TENSOR:
    """The same formulas on tensors: each step is recorded for higher-order gradients."""

    raw = False

    @staticmethod
    def v(t: Any) -> Any:
        return t

    @staticmethod
    def wrap(g: Any) -> Any:
        return g

    @staticmethod
    def unwrap(t: Any) -> Any:
        return t

    @staticmethod
    def const(a: Any) -> Any:
        return _wrap(a, None)

    @staticmethod
    def fix(g: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        from fivefold.grad.functions import shape as S

        if g._data.shape != shape:
            g = sum_to(g, shape, _TENSOR)
        if g._data.dtype is not dtype:
            g = S.cast(g, dtype)
        return g

    @staticmethod
    def exp(x: Any) -> Any:
        return x.exp()

    @staticmethod
    def log(x: Any) -> Any:
        return x.log()

    @staticmethod
    def sqrt(x: Any) -> Any:
        return x.sqrt()

    @staticmethod
    def sin(x: Any) -> Any:
        return x.sin()

    @staticmethod
    def cos(x: Any) -> Any:
        return x.cos()

    @staticmethod
    def tanh(x: Any) -> Any:
        return x.tanh()

    @staticmethod
    def sigmoid(x: Any) -> Any:
        return x.sigmoid()

    @staticmethod
    def sign(x: Any) -> Any:
        return x.sign()

    @staticmethod
    def erf(x: Any) -> Any:
        return x.erf()

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        from fivefold.grad.functions import elementwise

        return elementwise.where(_wrap(np.asarray(c), None), a, b)

    @staticmethod
    def matmul(a: Any, b: Any) -> Any:
        from fivefold.grad.functions import linalg

        return linalg.matmul(a, b)

    @staticmethod
    def swap(a: Any) -> Any:
        return a.transpose(-1, -2)

    @staticmethod
    def sum(g: Any, axis: Any, keepdims: bool = False) -> Any:
        return g.sum(axis, keepdim=keepdims)

    @staticmethod
    def reshape(g: Any, shape: tuple[int, ...]) -> Any:
        return g.reshape(shape)

    @staticmethod
    def expand(g: Any, shape: tuple[int, ...]) -> Any:
        lead = len(shape) - g.ndim
        if lead:
            g = g.reshape((1,) * lead + tuple(g.shape))
        return g.expand(shape)

    @staticmethod
    def permute(g: Any, axes: tuple[int, ...]) -> Any:
        return g.permute(axes)

    @staticmethod
    def cast(g: Any, dtype: Any) -> Any:
        from fivefold.grad.functions import shape as S

        return S.cast(g, dtype)

    @staticmethod
    def index_put(shape: tuple[int, ...], dtype: Any, key: Any, g: Any, accumulate: bool) -> Any:
        from fivefold.grad.functions import index

        return index.index_put_zeros(shape, dtype, key, g, accumulate)

    @staticmethod
    def getitem(g: Any, key: Any) -> Any:
        from fivefold.grad.functions import index

        return index.getitem_raw_key(g, key)

    @staticmethod
    def cat(gs: list[Any], axis: int) -> Any:
        from fivefold.grad.functions import shape as S

        return S.cat(gs, axis)

    @staticmethod
    def split_at(g: Any, sizes: list[int], axis: int) -> list[Any]:
        from fivefold.grad.functions import shape as S

        return list(S.split(g, sizes, axis))


NP = _NP()
TENSOR = _TENSOR()
