"""Matrix products: ``matmul`` (dot, mv, mm, batched with broadcasting) and the fused ``linear``."""

from __future__ import annotations

from typing import Any

import numpy as np

from fivefold.grad.functions.common import BinaryBackward, _arrays, _saved
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap


def _shape_error(ad: Any, bd: Any) -> RuntimeError:
    sa, sb = ad.shape, bd.shape
    if ad.ndim == 1 and bd.ndim == 1:
        return RuntimeError(
            f"inconsistent tensor size, expected tensor [{sa[0]}] and src [{sb[0]}] to have the "
            f"same number of elements, but got {sa[0]} and {sb[0]} elements respectively"
        )
    if ad.ndim >= 2 and bd.ndim == 1:
        rows = int(np.prod(sa[:-1]))
        return RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{sa[-1]}), vec ({sb[0]})")
    if bd.ndim == 2:
        rows = 1 if ad.ndim == 1 else int(np.prod(sa[:-1]))
        return RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{sa[-1]} and {sb[0]}x{sb[1]})"
        )
    if ad.ndim == 3 and bd.ndim == 3 and sa[0] == sb[0]:
        return RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{sa[0]}, {sa[2]}] "
            f"but got: [{sb[0]}, {sb[1]}]."
        )
    return RuntimeError(
        f"Expected size for first two dimensions of batch2 tensor to be: [{sa[-3] if ad.ndim > 2 else 1}"
        f", {sa[-1]}] but got: [{sb[-3] if bd.ndim > 2 else 1}, {sb[-2] if bd.ndim > 1 else sb[0]}]."
    )


class MmBackward0(BinaryBackward):
    __slots__ = ()

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        a, b = ops.v(self.a), ops.v(self.b)
        ga = ops.fix(ops.matmul(g, ops.swap(b)), *self.sa) if nf[0][0] is not None else None
        gb = ops.fix(ops.matmul(ops.swap(a), g), *self.sb) if nf[1][0] is not None else None
        return (ga, gb)


class BmmBackward0(MmBackward0):
    __slots__ = ()


class DotBackward0(MmBackward0):
    __slots__ = ()

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        a, b = ops.v(self.a), ops.v(self.b)
        return (g * b if nf[0][0] is not None else None, g * a if nf[1][0] is not None else None)


class MvBackward0(MmBackward0):
    __slots__ = ()

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        a, b = ops.v(self.a), ops.v(self.b)
        ga = gb = None
        if nf[0][0] is not None:
            ga = ops.reshape(g, (-1, 1)) * ops.reshape(b, (1, -1))
        if nf[1][0] is not None:
            gb = ops.matmul(ops.swap(a), g)
        return (ga, gb)


class MatmulBackward0(MmBackward0):
    """Any other ranks: vectors are lifted to matrices, batch dims broadcast and summed back."""

    __slots__ = ()

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        a, b = ops.v(self.a), ops.v(self.b)
        a_vec, b_vec = ops.unwrap(a).ndim == 1, ops.unwrap(b).ndim == 1
        a2 = ops.reshape(a, (1, -1)) if a_vec else a
        b2 = ops.reshape(b, (-1, 1)) if b_vec else b
        gshape = tuple(ops.unwrap(g).shape)
        if a_vec:
            gshape = (*gshape[:-1], 1, *gshape[-1:])
        if b_vec:
            gshape = (*gshape, 1)
        g2 = ops.reshape(g, gshape)
        ga = gb = None
        if nf[0][0] is not None:
            ga = ops.matmul(g2, ops.swap(b2))
            ga = ops.fix(ga, tuple(ops.unwrap(a2).shape), self.sa[1])
            ga = ops.reshape(ga, self.sa[0])
        if nf[1][0] is not None:
            gb = ops.matmul(ops.swap(a2), g2)
            gb = ops.fix(gb, tuple(ops.unwrap(b2).shape), self.sb[1])
            gb = ops.reshape(gb, self.sb[0])
        return (ga, gb)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    if not isinstance(b, Tensor):
        raise TypeError(f"matmul(): argument 'other' (position 1) must be Tensor, not {type(b).__name__}")
    ad, bd = a._data, b._data
    if ad.dtype is not bd.dtype:
        ad, bd = _arrays(a, b)
    if ad.ndim == 0 or bd.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {ad.ndim}D and {bd.ndim}D"
        )
    try:
        out = np.matmul(ad, bd)
    except ValueError:
        raise _shape_error(ad, bd) from None
    if not (STATE.enabled and (a._rg or b._rg)):
        return _wrap(out if isinstance(out, np.ndarray) else np.asarray(out), None)
    na, nb = ad.ndim, bd.ndim
    if na == 2 and nb == 2:
        cls: type[MmBackward0] = MmBackward0
    elif na == 1 and nb == 1:
        cls = DotBackward0
        out = np.asarray(out)
    elif na == 2 and nb == 1:
        cls = MvBackward0
    elif na == 3 and nb == 3 and ad.shape[0] == bd.shape[0]:
        cls = BmmBackward0
    else:
        cls = MatmulBackward0
    node = cls((edge(a), edge(b)))
    node.a, node.b = a, b
    node.sa, node.sb = (ad.shape, a._data.dtype), (bd.shape, b._data.dtype)
    if a._rg and b._rg:
        node._saved = (_saved(a), _saved(b))
    else:
        node._saved = (_saved(b),) if a._rg else (_saved(a),)
    return _wrap(out, node)


def mm(a: Tensor, b: Tensor) -> Tensor:
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError("self must be a matrix" if a._data.ndim != 2 else "mat2 must be a matrix")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    if a._data.ndim != 3 or b._data.ndim != 3:
        raise RuntimeError(
            "batch1 must be a 3D tensor" if a._data.ndim != 3 else "batch2 must be a 3D tensor"
        )
    return matmul(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D tensors")
    return matmul(a, b)


class AddmmBackward0(Node):
    """``x @ W.T + b`` in one node (torch's ``linear``): three matmuls at most in backward."""

    __slots__ = ("w", "x")
    w: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any, Any]:
        nf = self.next_functions
        x, w = ops.v(self.x), ops.v(self.w)
        gx = gw = gb = None
        if nf[0][0] is not None:
            gx = ops.matmul(g, w)
        if ops.raw:
            g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
            if nf[1][0] is not None:
                x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
                gw = g2.T @ x2
            if len(nf) > 2 and nf[2][0] is not None:
                gb = g2.sum(0)
        else:
            g2 = ops.reshape(g, (-1, g.shape[-1]))
            if nf[1][0] is not None:
                gw = ops.matmul(ops.swap(g2), ops.reshape(x, (-1, x.shape[-1])))
            if len(nf) > 2 and nf[2][0] is not None:
                gb = ops.sum(g2, 0)
        return (gx, gw, gb)

    def _release(self) -> None:
        self.x = self.w = None


class LinearBackward0(AddmmBackward0):
    __slots__ = ()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    xd, wd = x._data, weight._data
    if xd.shape[-1] != wd.shape[-1]:
        rows = int(np.prod(xd.shape[:-1])) if xd.ndim > 1 else 1
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{xd.shape[-1]} and "
            f"{wd.shape[1]}x{wd.shape[0]})"
        )
    out = np.matmul(xd, wd.T)
    if bias is not None:
        out += bias._data
    if STATE.enabled and (x._rg or weight._rg or (bias is not None and bias._rg)):
        edges = (edge(x), edge(weight)) if bias is None else (edge(x), edge(weight), edge(bias))
        node = (AddmmBackward0 if xd.ndim == 2 else LinearBackward0)(edges)
        node.x, node.w = x, weight
        if x._rg:
            node._saved = (_saved(weight), _saved(x)) if weight._rg else (_saved(weight),)
        else:
            node._saved = (_saved(x),)
        return _wrap(out, node)
    return _wrap(out, None)
