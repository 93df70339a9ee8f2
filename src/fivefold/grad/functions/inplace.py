"""In-place ops (``add_``, ``mul_``, ``zero_``, ``+=``, ``x[i] = v``) and their version counters.

Without a graph to record (grad mode off, as in optimizers, or nothing requires grad)
an in-place op is a NumPy in-place op plus a version bump. With one, the op is computed
out of place on a snapshot carrying the tensor's old edge, written back into the same
memory, and the tensor's ``grad_fn`` is rewired to the new node. When the tensor is a
view, its base is rewired too through a ``CopySlices`` node addressing the view's
elements by their flat positions in the base (found from the view's strides).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.functions.common import _operand
from fivefold.grad.functions.index import normalise_key
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap

LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_MSG = "a view of a leaf Variable that requires grad is being used in an in-place operation."


def check_inplace(t: Tensor, *, via_view: bool = False) -> None:
    """torch's refusals: in-place on a leaf that requires grad, or on a view of one."""
    if not STATE.enabled:
        return
    if t.grad_fn is None and t._rg:
        if t._base is not None or via_view:
            raise RuntimeError(VIEW_MSG)
        raise RuntimeError(LEAF_MSG)
    base = t._base
    if base is not None and t._rg and base.grad_fn is None and base._rg:
        raise RuntimeError(VIEW_MSG)


def _cast_check(t: Tensor, result: Any) -> Any:
    td, rd = t._data.dtype, result.dtype
    if td != rd and D.CATEGORY.get(rd, 2) > D.CATEGORY.get(td, 2):
        raise RuntimeError(
            f"result type {D.TORCH_NAME[str(rd)]} can't be cast to the desired output type "
            f"{D.TORCH_NAME[str(td)]}"
        )
    return result


class CopySlices(Node):
    """The base after an in-place write into ``key`` of it (gradient split between old and new)."""

    __slots__ = ("flat", "key", "sv")
    flat: Any
    key: Any
    sv: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        key = self.key
        gd = ops.unwrap(g)
        shape = tuple(gd.shape)
        flat = self.flat
        g_old = g_new = None
        if nf[0][0] is not None:
            mask = np.ones(shape, bool)
            if flat:
                mask.reshape(-1)[key] = False
            else:
                mask[key] = False
            g_old = g * ops.const(mask.astype(gd.dtype))
        if nf[1][0] is not None:
            region = ops.getitem(ops.reshape(g, (-1,)), key) if flat else ops.getitem(g, key)
            g_new = ops.fix(region, *self.sv)
        return (g_old, g_new)


class IndexPutBackward0(CopySlices):
    __slots__ = ()


class AsStridedBackward0(Node):
    """A view re-derived from its rewired base: picks the view's flat positions."""

    __slots__ = ("flat", "shape")
    flat: Any
    shape: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        gd = ops.unwrap(g)
        flat_g = ops.index_put(
            (int(np.prod(self.shape)),), gd.dtype, self.flat.reshape(-1), ops.reshape(g, (-1,)), True
        )
        return (ops.reshape(flat_g, self.shape),)


def flat_positions(base: np.ndarray[Any, Any], view: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Flat indices into ``base`` of each element of ``view`` (which aliases base's memory)."""
    if not base.flags.c_contiguous:
        raise RuntimeError(
            "in-place modification of a view of a non-contiguous tensor that requires grad is not supported"
        )
    item = base.itemsize
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    positions = np.arange(base.size, dtype=np.int64)
    strides = tuple(s // item * 8 for s in view.strides)
    return np.lib.stride_tricks.as_strided(positions[offset:], shape=view.shape, strides=strides).copy()


def commit(t: Tensor, result: Tensor) -> Tensor:
    """Writes ``result`` into ``t``'s memory, bumps the version, rewires the graph."""
    np.copyto(t._data, _cast_check(t, result._data), casting="unsafe")
    t._vc[0] += 1
    node = result.grad_fn
    if node is None:
        return t
    base = t._base
    if base is None:
        t.grad_fn = node
        t._onr = result._onr
        t._rg = True
        return t
    flat = flat_positions(base._data, t._data)
    copy = CopySlices(((base.grad_fn, base._onr) if base.grad_fn is not None else (None, 0), edge(result)))
    copy.flat, copy.key, copy.sv = True, flat.reshape(-1), (t._data.shape, t._data.dtype)
    copy_view = flat.reshape(t._data.shape)
    base.grad_fn = copy
    base._onr = 0
    base._rg = True
    view_node = AsStridedBackward0((edge(base),))
    view_node.flat, view_node.shape = copy_view, base._data.shape
    t.grad_fn = view_node
    t._onr = 0
    t._rg = True
    return t


def _needs_graph(t: Tensor, others: tuple[Any, ...]) -> bool:
    if not STATE.enabled:
        return False
    return t._rg or any(isinstance(o, Tensor) and o._rg for o in others)


def _snapshot(t: Tensor) -> Tensor:
    snap = _wrap(t._data.copy(), t.grad_fn)
    snap._onr = t._onr
    snap._rg = t._rg
    snap._accum = t._accum
    return snap


def inplace(t: Tensor, fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
    """Applies the out-of-place ``fn(t, *args)`` in place."""
    check_inplace(t)
    if not _needs_graph(t, args):
        with_grad = STATE.enabled
        STATE.enabled = False
        try:
            result = fn(t, *args, **kwargs)
        finally:
            STATE.enabled = with_grad
        np.copyto(t._data, _cast_check(t, result._data), casting="unsafe")
        t._vc[0] += 1
        return t
    return commit(t, fn(_snapshot(t), *args, **kwargs))


# ------------------------------------------------------------------ the no-graph fast paths
def add_(t: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    if STATE.enabled and (t._rg or (isinstance(other, Tensor) and other._rg)):
        from fivefold.grad.functions.elementwise import add

        return inplace(t, add, other, alpha=alpha)
    od = other._data if isinstance(other, Tensor) else other
    x = t._data
    if alpha != 1:
        od = od * alpha
    if isinstance(od, np.ndarray) and od.dtype != x.dtype:
        _cast_check(t, np.result_type(x, od) if od.ndim else x)
    np.add(x, od, out=x, casting="unsafe")
    t._vc[0] += 1
    return t


def sub_(t: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    return add_(t, other, alpha=-alpha)


def mul_(t: Tensor, other: Any) -> Tensor:
    if STATE.enabled and (t._rg or (isinstance(other, Tensor) and other._rg)):
        from fivefold.grad.functions.elementwise import mul

        return inplace(t, mul, other)
    x = t._data
    np.multiply(x, other._data if isinstance(other, Tensor) else other, out=x, casting="unsafe")
    t._vc[0] += 1
    return t


def div_(t: Tensor, other: Any) -> Tensor:
    from fivefold.grad.functions.elementwise import div

    return inplace(t, div, other)


def zero_(t: Tensor) -> Tensor:
    check_inplace(t)
    if STATE.enabled and t._rg:
        from fivefold.grad.functions.elementwise import mul

        return inplace(t, mul, 0)
    t._data[...] = 0
    t._vc[0] += 1
    return t


def fill_(t: Tensor, value: Any) -> Tensor:
    check_inplace(t)
    v = value._data if isinstance(value, Tensor) else value
    if _needs_graph(t, (value,)):
        return setitem(t, Ellipsis, value)
    t._data[...] = v
    t._vc[0] += 1
    return t


def copy_(t: Tensor, src: Any) -> Tensor:
    check_inplace(t)
    if _needs_graph(t, (src,)):
        return setitem(t, Ellipsis, src)
    np.copyto(t._data, src._data if isinstance(src, Tensor) else src, casting="unsafe")
    t._vc[0] += 1
    return t


def setitem(t: Tensor, key: Any, value: Any) -> Tensor:
    k, basic = normalise_key(key)
    check_inplace(t, via_view=basic and key is not Ellipsis)
    v = _operand(value, t)
    vd = v._data if isinstance(v, Tensor) else v
    if not _needs_graph(t, (v,)):
        t._data[k] = vd
        t._vc[0] += 1
        return t
    if not isinstance(v, Tensor):
        v = _wrap(np.asarray(vd, t._data.dtype), None)
    new = t._data.copy()
    new[k] = v._data
    cls = CopySlices if basic else IndexPutBackward0
    snap_edge = (t.grad_fn, t._onr) if t.grad_fn is not None else edge(t)
    node = cls((snap_edge, edge(v)))
    region = np.empty(t._data.shape, bool)[k]
    node.flat, node.key, node.sv = False, k, (v._data.shape, v._data.dtype)
    if v._data.shape != region.shape and v._data.ndim > region.ndim:
        node.sv = (region.shape, v._data.dtype)
    return commit(t, _wrap(new, node))


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    from fivefold.grad.creation import default_generator

    return copy_(t, default_generator().uniform(a, b, t._data.shape).astype(t._data.dtype))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    from fivefold.grad.creation import default_generator

    return copy_(t, (default_generator().standard_normal(t._data.shape) * std + mean).astype(t._data.dtype))


def unary_(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``exp_``-style method from an out-of-place op."""

    def op(t: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return inplace(t, fn, *args, **kwargs)

    op.__name__ = fn.__name__ + "_"
    return op
