"""Elementwise binary ops: arithmetic with broadcasting and torch's promotion, pow, max/min, where.

Each op computes its result with NumPy, and only when grad mode is on and an input
requires grad builds a node (named as torch's) saving just what its formula needs.
Gradients of broadcast inputs are summed back to the input's shape by ``ops.fix``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.functions.common import (
    BinaryBackward,
    _arrays,
    _meta,
    _operand,
    _saved,
    _scalar_fix,
    broadcasting,
    record,
)
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap


# ---------------------------------------------------------------------------- add / sub
class AddBackward0(Node):
    __slots__ = ("alpha", "sa", "sb")
    alpha: Any
    sa: Any
    sb: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        ga = ops.fix(g, *self.sa) if nf[0][0] is not None else None
        gb = None
        if nf[1][0] is not None:
            gb = g if self.alpha == 1 else g * self.alpha
            gb = ops.fix(gb, *self.sb)
        return (ga, gb)


class SubBackward0(AddBackward0):
    __slots__ = ()


def _addsub(a: Tensor, b: Any, alpha: Any, cls: type[AddBackward0]) -> Tensor:
    b = _operand(b, a)
    if isinstance(b, Tensor):
        ad, bd = _arrays(a, b)
        out = broadcasting(np.add, ad, bd if alpha == 1 else bd * alpha)
        if STATE.enabled and (a._rg or b._rg):
            node = cls((edge(a), edge(b)))
            node.alpha = alpha
            node.sa = _meta(a)
            node.sb = _meta(b)
            return _wrap(out, node)
        return _wrap(out, None)
    ad = a._data
    out = _scalar_fix(ad + b * alpha, ad, b)
    if STATE.enabled and a._rg:
        node = cls((edge(a), (None, 0)))  # torch lists the scalar operand as a missing edge
        node.alpha = alpha
        node.sa = _meta(a)
        return _wrap(out, node)
    return _wrap(out, None)


def add(a: Tensor, b: Any, *, alpha: Any = 1) -> Tensor:
    return _addsub(a, b, alpha, AddBackward0)


def sub(a: Tensor, b: Any, *, alpha: Any = 1) -> Tensor:
    return _addsub(a, b, -alpha, SubBackward0)


class RsubBackward1(Node):
    __slots__ = ("dt",)
    dt: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (-g,)


def rsub(a: Tensor, b: Any) -> Tensor:
    """``b - a`` for a scalar ``b``."""
    if isinstance(b, Tensor | np.ndarray):
        return sub(_operand(b, a), a)
    ad = a._data
    return record(_scalar_fix(b - ad, ad, b), a, RsubBackward1)


# ---------------------------------------------------------------------------- mul / div
class MulBackward0(BinaryBackward):
    __slots__ = ()

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        ga = ops.fix(g * ops.v(self.b), *self.sa) if nf[0][0] is not None else None
        gb = ops.fix(g * ops.v(self.a), *self.sb) if nf[1][0] is not None else None
        return (ga, gb)


def mul(a: Tensor, b: Any) -> Tensor:
    if not isinstance(b, Tensor):
        b = _operand(b, a)
    if isinstance(b, Tensor):
        ad, bd = a._data, b._data
        if ad.dtype is not bd.dtype:
            ad, bd = _arrays(a, b)
        out = broadcasting(np.multiply, ad, bd)
        if STATE.enabled and (a._rg or b._rg):
            node = MulBackward0((edge(a), edge(b)))
            node.a = a
            node.b = b
            if a._rg:
                node.sa = (ad.shape, ad.dtype if ad.dtype is a._data.dtype else a._data.dtype)
                if b._rg:
                    node._saved = (_saved(b), _saved(a))
                    node.sb = (bd.shape, b._data.dtype)
                else:
                    node._saved = (_saved(b),)
            else:
                node.sb = (bd.shape, b._data.dtype)
                node._saved = (_saved(a),)
            return _wrap(out, node)
        return _wrap(out, None)
    ad = a._data
    out = _scalar_fix(ad * b, ad, b)
    if STATE.enabled and a._rg:
        node = MulBackward0((edge(a), (None, 0)))
        node.a = a
        node.b = b
        node.sa = (ad.shape, ad.dtype)
        return _wrap(out, node)
    return _wrap(out, None)


class DivBackward0(BinaryBackward):
    __slots__ = ()

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        b = ops.v(self.b)
        ga = ops.fix(g / b, *self.sa) if nf[0][0] is not None else None
        gb = ops.fix(-g * ops.v(self.a) / (b * b), *self.sb) if nf[1][0] is not None else None
        return (ga, gb)


def _true_div_dtype(out: Any, ad: Any, bd: Any) -> Any:
    if ad.dtype.kind != "f" and getattr(bd, "dtype", None) is not None and bd.dtype.kind != "f":
        return out.astype(D.default_float())
    if ad.dtype.kind != "f" and isinstance(bd, (int, float)):
        return out.astype(D.default_float())
    return out


def div(a: Tensor, b: Any, *, rounding_mode: str | None = None) -> Tensor:
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        return _nograd_binary(a, b, lambda x, y: np.trunc(x / y).astype(np.result_type(x, y)))
    b = _operand(b, a)
    if isinstance(b, Tensor):
        ad, bd = _arrays(a, b)
        out = _true_div_dtype(broadcasting(np.true_divide, ad, bd), ad, bd)
        if STATE.enabled and (a._rg or b._rg):
            node = DivBackward0((edge(a), edge(b)))
            node.a, node.b = a, b
            node.sa, node.sb = _meta(a), _meta(b)
            node._saved = (_saved(b), _saved(a)) if b._rg else (_saved(b),)
            return _wrap(out, node)
        return _wrap(out, None)
    ad = a._data
    out = _true_div_dtype(ad / b, ad, b)
    if STATE.enabled and a._rg:
        node = DivBackward0((edge(a), (None, 0)))
        node.a, node.b = a, b
        node.sa = _meta(a)
        return _wrap(out, node)
    return _wrap(out, None)


def rdiv(a: Tensor, b: Any) -> Tensor:
    """``b / a`` for a scalar ``b``: torch records it as reciprocal then multiply."""
    if isinstance(b, Tensor | np.ndarray):
        return div(_operand(b, a), a)
    from fivefold.grad.functions.unary import reciprocal

    return mul(reciprocal(a), b)


def _nograd_binary(a: Tensor, b: Any, fn: Callable[[Any, Any], Any], fix_scalar: bool = True) -> Tensor:
    b = _operand(b, a)
    if isinstance(b, Tensor):
        return _wrap(broadcasting(fn, *_arrays(a, b)), None)
    out = fn(a._data, b)
    return _wrap(_scalar_fix(out, a._data, b) if fix_scalar else out, None)


def floor_divide(a: Tensor, b: Any) -> Tensor:
    return _nograd_binary(a, b, np.floor_divide)


def remainder(a: Tensor, b: Any) -> Tensor:
    return _nograd_binary(a, b, np.remainder)


def compare(a: Tensor, b: Any, fn: Callable[[Any, Any], Any]) -> Tensor:
    """Comparisons and logical ops: results never require grad."""
    return _nograd_binary(a, b, fn, fix_scalar=False)


# ---------------------------------------------------------------------------- pow
class PowBackward0(Node):
    __slots__ = ("a", "p")
    a: Any
    p: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        p = self.p
        if p == 0:
            return (g * 0,)
        x = ops.v(self.a)
        if p == 2:
            return (g * (2 * x),)
        return (g * (p * x ** (p - 1)),)

    def _release(self) -> None:
        self.a = None


class PowBackward1(BinaryBackward):
    __slots__ = ("out",)
    out: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        nf = self.next_functions
        a, b = ops.v(self.a), ops.v(self.b)
        ga = gb = None
        if nf[0][0] is not None:
            ga = ops.fix(g * (b * a ** (b - 1)), *self.sa)
        if nf[1][0] is not None:
            ad, bd = ops.unwrap(a), ops.unwrap(b)
            zero = (ad == 0) & (bd >= 0)
            out = a**b
            term = ops.where(zero, out * 0, out * ops.log(ops.where(zero, a * 0 + 1, a)))
            gb = ops.fix(g * term, *self.sb)
        return (ga, gb)


class PowBackward2(Node):
    __slots__ = ("base", "out", "x")
    base: Any
    out: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        base = self.base
        out = self.out if ops.raw else base**self.x
        if base == 0:
            xd = ops.unwrap(ops.v(self.x))
            return (ops.where(xd >= 0, g * 0, g * out * math.log(base) if base > 0 else g * out),)
        return (g * out * math.log(base),)

    def _release(self) -> None:
        self.out = self.x = None


def pow(a: Tensor, b: Any) -> Tensor:
    b = _operand(b, a)
    if isinstance(b, Tensor):
        ad, bd = _arrays(a, b)
        out = broadcasting(np.power, ad, bd)
        if STATE.enabled and (a._rg or b._rg):
            node = PowBackward1((edge(a), edge(b)))
            node.a, node.b = a, b
            node.sa, node.sb = _meta(a), _meta(b)
            node._saved = (_saved(a), _saved(b))
            return _wrap(out, node)
        return _wrap(out, None)
    ad = a._data
    if ad.dtype.kind in "iub" and isinstance(b, int) and b < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    out = _scalar_fix(np.square(ad) if b == 2 else np.power(ad, b), ad, b)
    return record(out, a, PowBackward0, "self", a=a, p=b)


def rpow(a: Tensor, base: Any) -> Tensor:
    """``base ** a`` for a scalar ``base``."""
    if isinstance(base, Tensor | np.ndarray):
        return pow(_operand(base, a), a)
    ad = a._data
    out = _scalar_fix(np.power(base, ad), ad, base)
    if out.dtype.kind == "f" and out.dtype != ad.dtype and ad.dtype.kind == "f":
        out = out.astype(ad.dtype)
    return record(out, a, PowBackward2, base=base, x=a, out=out)


# ---------------------------------------------------------------------------- max/min/where
class MaximumBackward0(BinaryBackward):
    __slots__ = ("take_max",)
    take_max: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        ad, bd = ops.unwrap(ops.v(self.a)), ops.unwrap(ops.v(self.b))
        win = ad > bd if self.take_max else ad < bd
        tie = ad == bd
        wa = np.where(win, 1.0, np.where(tie, 0.5, 0.0)).astype(g.dtype if ops.raw else g._data.dtype)
        nf = self.next_functions
        ga = ops.fix(g * ops.const(wa), *self.sa) if nf[0][0] is not None else None
        gb = ops.fix(g * ops.const(1 - wa), *self.sb) if nf[1][0] is not None else None
        return (ga, gb)


class MinimumBackward0(MaximumBackward0):
    __slots__ = ()


def _extremum(a: Tensor, b: Any, take_max: bool) -> Tensor:
    b = _operand(b, a)
    if not isinstance(b, Tensor):
        b = _wrap(np.asarray(b, a._data.dtype), None)
    ad, bd = _arrays(a, b)
    out = broadcasting(np.maximum if take_max else np.minimum, ad, bd)
    if STATE.enabled and (a._rg or b._rg):
        node = (MaximumBackward0 if take_max else MinimumBackward0)((edge(a), edge(b)))
        node.a, node.b, node.take_max = a, b, take_max
        node.sa, node.sb = _meta(a), _meta(b)
        node._saved = (_saved(a), _saved(b))
        return _wrap(out, node)
    return _wrap(out, None)


def maximum(a: Tensor, b: Any) -> Tensor:
    return _extremum(a, b, True)


def minimum(a: Tensor, b: Any) -> Tensor:
    return _extremum(a, b, False)


class WhereBackward0(Node):
    __slots__ = ("cond", "sa", "sb")
    cond: Any
    sa: Any
    sb: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any, Any]:
        nf = self.next_functions
        c = self.cond
        zero = g * 0
        ga = ops.fix(ops.where(c, g, zero), *self.sa) if nf[1][0] is not None else None
        gb = ops.fix(ops.where(c, zero, g), *self.sb) if nf[2][0] is not None else None
        return (None, ga, gb)

    def _release(self) -> None:
        self.cond = None


def where(cond: Any, a: Any, b: Any) -> Tensor:
    c = cond._data if isinstance(cond, Tensor) else np.asarray(cond)
    if c.dtype != D.NP_BOOL:
        c = c.astype(bool)
    if not isinstance(a, Tensor):
        a = _wrap(np.asarray(a, b._data.dtype if isinstance(b, Tensor) else D.default_float()), None)
    if not isinstance(b, Tensor):
        b = _wrap(np.asarray(b, a._data.dtype), None)
    ad, bd = _arrays(a, b)
    out = broadcasting(lambda x, y: np.where(c, x, y), ad, bd)
    if STATE.enabled and (a._rg or b._rg):
        node = WhereBackward0(((None, 0), edge(a), edge(b)))
        node.cond = np.broadcast_to(c, out.shape)
        node.sa, node.sb = _meta(a), _meta(b)
        return _wrap(out, node)
    return _wrap(out, None)


# ---------------------------------------------------------------------------- copies
class CloneBackward0(Node):
    __slots__ = ()
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (g,)


def clone(a: Tensor) -> Tensor:
    return record(a._data.copy(), a, CloneBackward0)


def logical_not(a: Tensor) -> Tensor:
    return _wrap(np.logical_not(a._data), None)


def bitwise_not(a: Tensor) -> Tensor:
    return _wrap(np.invert(a._data), None)


def isnan(a: Tensor) -> Tensor:
    return _wrap(np.isnan(a._data), None)


def isfinite(a: Tensor) -> Tensor:
    return _wrap(np.isfinite(a._data), None)
