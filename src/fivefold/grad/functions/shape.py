"""Shape ops: dtype casts, views (reshape, squeeze, transpose, permute, expand) and joins/splits.

Views share the base tensor's version counter, as torch's do, so an in-place change
through a view invalidates what the graph saved from the base.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.functions.common import node_for
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _dim, _wrap


def view_of(a: Tensor, arr: Any, node: Node | None) -> Tensor:
    """A result that aliases ``a``'s memory: it shares the version counter and records its base."""
    t = _wrap(arr, node)
    t._vc = a._vc
    t._base = a._base if a._base is not None else a
    return t


class ToCopyBackward0(Node):
    __slots__ = ("dtype",)
    dtype: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.cast(g, self.dtype),)


def cast(a: Tensor, dtype: Any) -> Tensor:
    x = a._data
    if x.dtype == dtype:
        return a
    out = x.astype(dtype)
    if STATE.enabled and a._rg and out.dtype.kind == "f":
        node = ToCopyBackward0((edge(a),))
        node.dtype = x.dtype
        return _wrap(out, node)
    return _wrap(out, None)


class ViewBackward0(Node):
    __slots__ = ("shape",)
    shape: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.reshape(g, self.shape),)


class UnsqueezeBackward0(ViewBackward0):
    __slots__ = ()


class SqueezeBackward0(ViewBackward0):
    __slots__ = ()


class SqueezeBackward1(ViewBackward0):
    __slots__ = ()


class SqueezeBackward2(ViewBackward0):
    __slots__ = ()


def _shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _reshaped(a: Tensor, arr: Any, cls: type[ViewBackward0]) -> Tensor:
    return view_of(a, arr, node_for(a, cls, shape=a._data.shape))


def reshape(a: Tensor, *shape: Any) -> Tensor:
    target = _shape_arg(shape)
    try:
        arr = a._data.reshape(target)
    except ValueError:
        raise RuntimeError(
            f"shape '[{', '.join(str(s) for s in target)}]' is invalid for input of size {a._data.size}"
        ) from None
    return _reshaped(a, arr, ViewBackward0)


def view(a: Tensor, *shape: Any) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], D.dtype):
        return _wrap(a._data.view(shape[0].np), None)
    return reshape(a, *shape)


def view_as(a: Tensor, other: Tensor) -> Tensor:
    return reshape(a, other._data.shape)


def reshape_as(a: Tensor, other: Tensor) -> Tensor:
    return reshape(a, other._data.shape)


def flatten(a: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    shape = a._data.shape
    if not shape:
        return reshape(a, (1,))
    s, e = _dim(start_dim, len(shape)), _dim(end_dim, len(shape))
    if s == e:
        return a
    merged = int(np.prod(shape[s : e + 1]))
    return reshape(a, (*shape[:s], merged, *shape[e + 1 :]))


def unflatten(a: Tensor, dim: int, sizes: Any) -> Tensor:
    shape = a._data.shape
    d = _dim(dim, len(shape))
    return reshape(a, shape[:d] + tuple(sizes) + shape[d + 1 :])


def squeeze(a: Tensor, dim: Any = None) -> Tensor:
    x = a._data
    if dim is None:
        return _reshaped(a, x.reshape(tuple(s for s in x.shape if s != 1)), SqueezeBackward0)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = {_dim(d, x.ndim) for d in dims} if x.ndim else set()
    arr = x.reshape(tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1)))
    return _reshaped(a, arr, SqueezeBackward1 if isinstance(dim, int) else SqueezeBackward2)


def unsqueeze(a: Tensor, dim: int) -> Tensor:
    x = a._data
    d = _dim(dim, x.ndim + 1)
    return _reshaped(a, np.expand_dims(x, d), UnsqueezeBackward0)


class PermuteBackward0(Node):
    __slots__ = ("inverse",)
    inverse: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.permute(g, self.inverse),)


class TransposeBackward0(PermuteBackward0):
    __slots__ = ()


class TBackward0(PermuteBackward0):
    __slots__ = ()


def _permuted(a: Tensor, axes: tuple[int, ...], cls: type[PermuteBackward0]) -> Tensor:
    arr = a._data.transpose(axes)
    if STATE.enabled and a._rg:
        node = cls((edge(a),))
        node.inverse = tuple(np.argsort(axes).tolist())
        return view_of(a, arr, node)
    return view_of(a, arr, None)


def permute(a: Tensor, *dims: Any) -> Tensor:
    axes = _shape_arg(dims)
    nd = a._data.ndim
    norm = tuple(_dim(d, nd) for d in axes)
    if len(norm) != nd or len(set(norm)) != nd:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            "length of the desired ordering of dimensions i.e. input.dim() = "
            f"{nd} is not equal to len(dims) = {len(norm)}"
        )
    return _permuted(a, norm, PermuteBackward0)


def transpose(a: Tensor, dim0: int, dim1: int) -> Tensor:
    nd = a._data.ndim
    axes = list(range(nd))
    if nd == 0:
        return _permuted(a, (), TransposeBackward0)
    d0, d1 = _dim(dim0, nd), _dim(dim1, nd)
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return _permuted(a, tuple(axes), TransposeBackward0)


def t(a: Tensor) -> Tensor:
    nd = a._data.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return _permuted(a, tuple(range(nd))[::-1], TBackward0)


def mT(a: Tensor) -> Tensor:
    return transpose(a, -2, -1)


class ExpandBackward0(Node):
    __slots__ = ("shape",)
    shape: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (ops.fix(g, self.shape, g.dtype if ops.raw else g._data.dtype),)


def expand(a: Tensor, *sizes: Any) -> Tensor:
    target = list(_shape_arg(sizes))
    x = a._data
    lead = len(target) - x.ndim
    for i in range(len(target)):
        if target[i] == -1 and i >= lead:
            target[i] = x.shape[i - lead]
    for i in range(x.ndim):
        have, want = x.shape[i], target[i + lead]
        if have != want and have != 1:
            raise RuntimeError(
                f"The expanded size of the tensor ({want}) must match the existing size ({have}) at "
                f"non-singleton dimension {i + lead}.  Target sizes: [{', '.join(str(s) for s in target)}].  "
                f"Tensor sizes: [{', '.join(str(s) for s in x.shape)}]"
            )
    arr = np.broadcast_to(x, tuple(target))
    return view_of(a, arr, node_for(a, ExpandBackward0, shape=x.shape))


def expand_as(a: Tensor, other: Tensor) -> Tensor:
    return expand(a, other._data.shape)


def broadcast_to(a: Tensor, shape: Any) -> Tensor:
    return expand(a, tuple(shape))


def repeat(a: Tensor, *sizes: Any) -> Tensor:
    reps = _shape_arg(sizes)
    x = a._data
    lead = len(reps) - x.ndim
    y = reshape(a, (1,) * lead + x.shape) if lead else a
    pieces = y
    for axis, r in enumerate(reps):
        if r != 1:
            pieces = cat([pieces] * r, axis)
    return pieces if pieces is not a else clone_(a)


def clone_(a: Tensor) -> Tensor:
    from fivefold.grad.functions.elementwise import clone

    return clone(a)


# ---------------------------------------------------------------------------- cat / stack / split
class CatBackward0(Node):
    __slots__ = ("axis", "sizes")
    axis: Any
    sizes: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> Any:
        return ops.split_at(g, self.sizes, self.axis)


class StackBackward0(Node):
    __slots__ = ("axis",)
    axis: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> list[Any]:
        n = len(self.next_functions)
        parts = ops.split_at(g, [1] * n, self.axis)
        return [
            ops.reshape(
                p, tuple(ops.unwrap(p).shape[: self.axis]) + tuple(ops.unwrap(p).shape[self.axis + 1 :])
            )
            for p in parts
        ]


def _same_dtype(tensors: list[Tensor]) -> list[Any]:
    arrays = [t._data for t in tensors]
    dt = arrays[0].dtype
    if any(a.dtype != dt for a in arrays):
        from fivefold.grad._dtype import _promote_same_rank

        for a in arrays[1:]:
            dt = _promote_same_rank(dt, a.dtype)
        arrays = [a.astype(dt) for a in arrays]
    return arrays


def cat(tensors: Any, dim: int = 0, *, axis: int | None = None) -> Tensor:
    if axis is not None:
        dim = axis
    ts = [t for t in tensors if not (t._data.ndim == 1 and t._data.shape[0] == 0)] or list(tensors)[:1]
    if not ts:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    arrays = _same_dtype(ts)
    ref = arrays[0]
    d = _dim(dim, ref.ndim)
    for i, arr in enumerate(arrays[1:], start=1):
        if arr.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {arr.ndim}")
        for k in range(ref.ndim):
            if k != d and arr.shape[k] != ref.shape[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{ref.shape[k]} but got size {arr.shape[k]} for tensor number {i} in the list."
                )
    out = np.concatenate(arrays, axis=d)
    if STATE.enabled and any(t._rg for t in ts):
        node = CatBackward0(tuple(edge(t) for t in ts))
        node.axis, node.sizes = d, [a.shape[d] for a in arrays]
        return _wrap(out, node)
    return _wrap(out, None)


def stack(tensors: Any, dim: int = 0) -> Tensor:
    ts = list(tensors)
    if not ts:
        raise RuntimeError("stack expects a non-empty TensorList")
    arrays = _same_dtype(ts)
    for i, arr in enumerate(arrays[1:], start=1):
        if arr.shape != arrays[0].shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got "
                f"[{', '.join(map(str, arrays[0].shape))}] at entry 0 and "
                f"[{', '.join(map(str, arr.shape))}] at entry {i}"
            )
    d = _dim(dim, arrays[0].ndim + 1)
    out = np.stack(arrays, axis=d)
    if STATE.enabled and any(t._rg for t in ts):
        node = StackBackward0(tuple(edge(t) for t in ts))
        node.axis = d
        return _wrap(out, node)
    return _wrap(out, None)


class SplitBackward0(Node):
    __slots__ = ("_nout", "axis", "dtype", "shape", "sizes")
    _nout: Any
    axis: Any
    dtype: Any
    shape: Any
    sizes: Any
    _saves = False

    def apply(self, grads: Any, ops: Any) -> tuple[Any]:
        if self._nout == 1:  # the engine passes a lone output's gradient bare
            grads = [grads]
        parts = []
        for g, size in zip(grads, self.sizes, strict=True):
            if g is None:
                shape = list(self.shape)
                shape[self.axis] = size
                g = ops.const(np.zeros(tuple(shape), self.dtype))
            parts.append(g)
        return (ops.cat(parts, self.axis),)


class SplitWithSizesBackward0(SplitBackward0):
    __slots__ = ()


class UnbindBackward0(SplitBackward0):
    __slots__ = ()

    def apply(self, grads: Any, ops: Any) -> tuple[Any]:
        if self._nout == 1:
            grads = [grads]
        shape = list(self.shape)
        shape[self.axis] = 1
        expanded = [None if g is None else ops.reshape(g, tuple(shape)) for g in grads]
        return super().apply(expanded if len(expanded) > 1 else expanded[0], ops)


def _split_views(a: Tensor, sizes: list[int], axis: int, cls: type[SplitBackward0]) -> tuple[Tensor, ...]:
    x = a._data
    bounds = np.cumsum([0, *sizes])
    pieces = [
        x[(slice(None),) * axis + (slice(int(bounds[i]), int(bounds[i + 1])),)] for i in range(len(sizes))
    ]
    if cls is UnbindBackward0:
        pieces = [p.squeeze(axis) for p in pieces]
    if STATE.enabled and a._rg:
        node = cls((edge(a),))
        node._nout, node.axis, node.sizes, node.shape, node.dtype = len(sizes), axis, sizes, x.shape, x.dtype
        outs = []
        for i, p in enumerate(pieces):
            t = view_of(a, p, node)
            t._onr = i
            outs.append(t)
        return tuple(outs)
    return tuple(view_of(a, p, None) for p in pieces)


def split(a: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    x = a._data
    axis = _dim(dim, x.ndim)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [min(step, n - i) for i in range(0, n, step)] if n else [0]
        return _split_views(a, sizes, axis, SplitBackward0)
    sizes = [int(s) for s in split_size_or_sections]
    if sum(sizes) != n:
        raise RuntimeError(
            f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
            f"dimension {axis}), but got split_sizes=[{', '.join(map(str, sizes))}]"
        )
    return _split_views(a, sizes, axis, SplitWithSizesBackward0)


def chunk(a: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    n = a._data.shape[_dim(dim, a._data.ndim)]
    step = -(-n // chunks) if n else 1
    return split(a, step, dim)


def unbind(a: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    axis = _dim(dim, a._data.ndim)
    return _split_views(a, [1] * a._data.shape[axis], axis, UnbindBackward0)
