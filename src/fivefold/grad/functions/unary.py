"""One-input ops: exp, log, sqrt, trigonometric, activations (relu, gelu, sigmoid, softplus), clamp.

Most are built by :func:`_unary` from a forward function and a gradient formula; each
gets its own node class named as torch's (``ExpBackward0`` ...). Ops that torch saves
the result for (exp, tanh, sigmoid, sqrt, relu) use the result in plain backward and
recompute it from the input when recording a graph for higher-order gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.functions.common import record
from fivefold.grad.functions.elementwise import maximum, minimum, pow
from fivefold.grad.graph import Node
from fivefold.grad.tensor import Tensor, _wrap

_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


class UnaryBackward(Node):
    """A one-input op; ``formula(g, x, y, ops)`` gives the input gradient (y: raw result)."""

    __slots__ = ("x", "y")
    x: Any
    y: Any
    formula: Callable[[Any, Any, Any, Any], Any]

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        return (type(self).formula(g, ops.v(self.x), self.y, ops),)

    def _release(self) -> None:
        self.x = self.y = None


def _unary(
    name: str,
    forward: Callable[[Any], Any],
    formula: Callable[[Any, Any, Any, Any], Any],
    saves: str = "self",
    float_only: bool = True,
) -> Callable[[Tensor], Tensor]:
    """Builds ``op(t)`` and its node class ``<Name>Backward0``; ``saves`` is self, result or none."""
    cls = type(
        name, (UnaryBackward,), {"__slots__": (), "formula": staticmethod(formula), "_saves": saves != "none"}
    )
    globals()[name] = cls

    def op(a: Tensor) -> Tensor:
        ad = a._data
        if float_only and ad.dtype.kind != "f":
            ad = ad.astype(D.default_float())
        out = forward(ad)
        return record(out, a, cls, saves, x=a, y=out)

    op.__name__ = name.replace("Backward0", "").lower()
    return op


def _zero_grad(g: Any, x: Any, y: Any, ops: Any) -> Any:
    return g * 0


def _sigmoid(x: Any) -> Any:
    return 0.5 * (1 + np.tanh(0.5 * x))


def _gelu_grad(g: Any, x: Any, y: Any, ops: Any) -> Any:
    cdf = 0.5 * (1 + ops.erf(x * (1 / _SQRT_2)))
    pdf = ops.exp(x * x * -0.5) * (1 / _SQRT_2PI)
    return g * (cdf + x * pdf)


def _erf_forward(x: Any) -> Any:
    from fivefold.grad.functions.backend import erf as _e

    return _e(x)


neg = _unary("NegBackward0", np.negative, lambda g, x, y, ops: -g, "none", float_only=False)
exp = _unary("ExpBackward0", np.exp, lambda g, x, y, ops: g * (y if ops.raw else ops.exp(x)), "result")
log = _unary("LogBackward0", np.log, lambda g, x, y, ops: g / x)
log1p = _unary("Log1PBackward0", np.log1p, lambda g, x, y, ops: g / (x + 1))
sqrt = _unary(
    "SqrtBackward0", np.sqrt, lambda g, x, y, ops: g / (2 * (y if ops.raw else ops.sqrt(x))), "result"
)
rsqrt = _unary(
    "RsqrtBackward0",
    lambda x: 1 / np.sqrt(x),
    lambda g, x, y, ops: g * -0.5 * (y if ops.raw else 1 / ops.sqrt(x)) ** 3,
    "result",
)
sin = _unary("SinBackward0", np.sin, lambda g, x, y, ops: g * ops.cos(x))
cos = _unary("CosBackward0", np.cos, lambda g, x, y, ops: g * -ops.sin(x))
tanh = _unary(
    "TanhBackward0", np.tanh, lambda g, x, y, ops: g * (1 - (y if ops.raw else ops.tanh(x)) ** 2), "result"
)
sigmoid = _unary(
    "SigmoidBackward0",
    _sigmoid,
    lambda g, x, y, ops: g * ((y * (1 - y)) if ops.raw else ops.sigmoid(x) * (1 - ops.sigmoid(x))),
    "result",
)
reciprocal = _unary(
    "ReciprocalBackward0",
    np.reciprocal,
    lambda g, x, y, ops: g * -((y * y) if ops.raw else 1 / (x * x)),
    "result",
)
abs = _unary(
    "AbsBackward0", np.abs, lambda g, x, y, ops: g * ops.const(np.sign(ops.unwrap(x))), float_only=False
)
erf = _unary(
    "ErfBackward0", _erf_forward, lambda g, x, y, ops: g * (2 / math.sqrt(math.pi)) * ops.exp(-(x * x))
)
gelu_exact = _unary("GeluBackward0", lambda x: 0.5 * x * (1 + _erf_forward(x / _SQRT_2)), _gelu_grad)


def square(a: Tensor) -> Tensor:
    return pow(a, 2)


def _relu_grad(g: Any, x: Any, y: Any, ops: Any) -> Any:
    mask = (y if ops.raw else ops.unwrap(x)) > 0
    return g * ops.const(mask)


_relu_op = _unary("ReluBackward0", lambda x: np.maximum(x, 0), _relu_grad, "result", float_only=False)


def relu(a: Tensor) -> Tensor:
    return _relu_op(a)


class GeluBackward0(Node):
    """tanh-approximated GELU (``approximate='tanh'``); the exact one is a unary above."""

    __slots__ = ("x",)
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        x = ops.v(self.x)
        k = math.sqrt(2 / math.pi)
        inner = k * (x + 0.044715 * x * x * x)
        t = ops.tanh(inner)
        left = 0.5 * x
        right = 1 + t
        d_inner = k * (1 + 3 * 0.044715 * x * x)
        return (g * (0.5 * right + left * (1 - t * t) * d_inner),)

    def _release(self) -> None:
        self.x = None


def gelu(a: Tensor, approximate: str = "none") -> Tensor:
    if approximate == "none":
        return gelu_exact(a)
    x = a._data
    k = math.sqrt(2 / math.pi)
    out = 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x**3)))
    return record(out, a, GeluBackward0, "self", x=a)


class SoftplusBackward0(Node):
    __slots__ = ("beta", "threshold", "x")
    beta: Any
    threshold: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        x = ops.v(self.x)
        bx = x * self.beta
        over = ops.unwrap(bx) > self.threshold
        z = ops.exp(ops.where(over, bx * 0, bx))
        return (ops.where(over, g, g * z / (z + 1)),)

    def _release(self) -> None:
        self.x = None


def softplus(a: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    x = a._data
    bx = x * beta
    over = bx > threshold
    out = np.where(over, x, np.log1p(np.exp(np.where(over, 0, bx))) / beta).astype(x.dtype)
    return record(out, a, SoftplusBackward0, "self", x=a, beta=beta, threshold=threshold)


sign = _unary("SignBackward0", np.sign, _zero_grad, "none", float_only=False)


class ClampBackward1(Node):
    __slots__ = ("hi", "lo", "x")
    hi: Any
    lo: Any
    x: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        xd = ops.unwrap(ops.v(self.x))
        mask = np.ones(xd.shape, bool)
        if self.lo is not None:
            mask &= xd >= self.lo
        if self.hi is not None:
            mask &= xd <= self.hi
        return (g * ops.const(mask),)

    def _release(self) -> None:
        self.x = None


class ClampMinBackward0(ClampBackward1):
    __slots__ = ()


class ClampMaxBackward0(ClampBackward1):
    __slots__ = ()


def clamp(
    a: Tensor, min: Any = None, max: Any = None, *, _node: type[ClampBackward1] = ClampBackward1
) -> Tensor:
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out_t = a
        if min is not None:
            out_t = maximum(
                out_t, min if isinstance(min, Tensor) else _wrap(np.asarray(min, a._data.dtype), None)
            )
        if max is not None:
            out_t = minimum(
                out_t, max if isinstance(max, Tensor) else _wrap(np.asarray(max, a._data.dtype), None)
            )
        return out_t
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    x = a._data
    out = np.clip(x, min, max)
    if out.dtype != x.dtype:
        out = out.astype(x.dtype)
    return record(out, a, _node, "self", x=a, lo=min, hi=max)


def clamp_min(a: Tensor, min: Any) -> Tensor:
    return clamp(a, min=min, _node=ClampMinBackward0)


def clamp_max(a: Tensor, max: Any) -> Tensor:
    return clamp(a, max=max, _node=ClampMaxBackward0)


floor = _unary("FloorBackward0", np.floor, _zero_grad, "none", float_only=False)
ceil = _unary("CeilBackward0", np.ceil, _zero_grad, "none", float_only=False)
round = _unary("RoundBackward0", np.round, _zero_grad, "none", float_only=False)
trunc = _unary("TruncBackward0", np.trunc, _zero_grad, "none", float_only=False)
