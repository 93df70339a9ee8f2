"""Plumbing shared by the op modules: operands and torch's dtype promotion, broadcast errors,
and recording a one-input op's node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap


def broadcast_error(a: Any, b: Any) -> RuntimeError:
    """torch's wording for two shapes that do not broadcast."""
    sa, sb = a.shape, b.shape
    n = max(len(sa), len(sb))
    pa = (1,) * (n - len(sa)) + tuple(sa)
    pb = (1,) * (n - len(sb)) + tuple(sb)
    for i in range(n - 1, -1, -1):
        if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1:
            return RuntimeError(
                f"The size of tensor a ({pa[i]}) must match the size of tensor b ({pb[i]}) "
                f"at non-singleton dimension {i}"
            )
    return RuntimeError(f"shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast")


def _saved(t: Tensor) -> tuple[list[int], int, Any, Any]:
    return (t._vc, t._vc[0], t._data, t)


def _operand(b: Any, like: Any) -> Any:
    """Turns the right operand into a Tensor, or a Python scalar kept as a weak scalar."""
    if isinstance(b, Tensor):
        return b
    if isinstance(b, np.generic):  # before float: np.float64 subclasses float but is not weak
        return b.item()
    if isinstance(b, (bool, int, float)):
        return b
    arr = np.asarray(b)
    if arr.dtype.kind == "f" and not isinstance(b, np.ndarray):
        arr = arr.astype(D.default_float())
    return _wrap(arr, None)


def _arrays(a: Tensor, b: Any) -> tuple[Any, Any]:
    """The operand arrays, cast to torch's common dtype."""
    ad, bd = a._data, b._data
    if ad.dtype is not bd.dtype:
        rt = D.result_type(ad, bd)
        if ad.dtype != rt:
            ad = ad.astype(rt)
        if bd.dtype != rt:
            bd = bd.astype(rt)
    return ad, bd


def _scalar_fix(out: Any, ad: Any, s: Any) -> Any:
    if (out.dtype.kind != "f" or ad.dtype.kind == "f") and (
        out.dtype is ad.dtype or not isinstance(s, (bool, int))
    ):
        return out
    want = D.scalar_result_type(ad, s)
    return out if out.dtype == want else out.astype(want)


def _meta(t: Tensor) -> tuple[tuple[int, ...], Any]:
    return (t._data.shape, t._data.dtype)


class BinaryBackward(Node):
    """A two-input op whose formula needs both inputs (``a``, ``b``); ``sa``/``sb`` are the
    (shape, dtype) each input's gradient is summed and cast back to."""

    __slots__ = ("a", "b", "sa", "sb")
    a: Any
    b: Any
    sa: Any
    sb: Any

    def _release(self) -> None:
        self.a = self.b = None


def broadcasting(fn: Callable[[Any, Any], Any], ad: Any, bd: Any) -> Any:
    """``fn(ad, bd)``, failing with torch's message when the two shapes do not broadcast."""
    try:
        return fn(ad, bd)
    except ValueError:
        raise broadcast_error(ad, bd) from None


def node_for(a: Tensor, node_type: Callable[[Any], Node], /, **fields: Any) -> Any:
    """A ``node_type`` node holding ``fields`` for a one-input op on ``a``, or None when no graph
    is recorded (grad mode off, or ``a`` does not require grad)."""
    if not (STATE.enabled and a._rg):
        return None
    node = node_type((edge(a),))
    for name, value in fields.items():
        setattr(node, name, value)
    return node


def record(
    out: Any, a: Tensor, node_type: Callable[[Any], Node], saves: str = "none", /, **fields: Any
) -> Tensor:
    """``out`` as the result of a one-input op on ``a``, produced by :func:`node_for`'s node.

    ``saves`` is what that node checks for in-place changes at backward: "self" (``a``),
    "result" (``out``) or "none".
    """
    node = node_for(a, node_type, **fields)
    result = _wrap(out, node)
    if node is not None:
        if saves == "self":
            node._saved = (_saved(a),)
        elif saves == "result":
            node._saved = ((result._vc, 0, out, node),)
    return result
