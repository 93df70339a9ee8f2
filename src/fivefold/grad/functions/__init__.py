"""The differentiable ops, one module per family, and the table of Tensor methods they provide."""

from __future__ import annotations

from typing import Any

from fivefold.grad.functions import (
    conv,
    elementwise,
    index,
    inplace,
    linalg,
    nnops,
    reduce,
    shape,
    unary,
)
from fivefold.grad.tensor import METHODS, Tensor

E, U, R, S, I, L, N, IP = elementwise, unary, reduce, shape, index, linalg, nnops, inplace


def _method_table() -> dict[str, Any]:
    table: dict[str, Any] = {
        # arithmetic
        "add": E.add,
        "sub": E.sub,
        "subtract": E.sub,
        "mul": E.mul,
        "multiply": E.mul,
        "div": E.div,
        "divide": E.div,
        "true_divide": E.div,
        "pow": E.pow,
        "neg": U.neg,
        "negative": U.neg,
        "abs": U.abs,
        "exp": U.exp,
        "log": U.log,
        "log1p": U.log1p,
        "sqrt": U.sqrt,
        "rsqrt": U.rsqrt,
        "sin": U.sin,
        "cos": U.cos,
        "tanh": U.tanh,
        "sigmoid": U.sigmoid,
        "relu": U.relu,
        "erf": U.erf,
        "reciprocal": U.reciprocal,
        "square": U.square,
        "sign": U.sign,
        "clamp": U.clamp,
        "clip": U.clamp,
        "clamp_min": U.clamp_min,
        "clamp_max": U.clamp_max,
        "maximum": E.maximum,
        "minimum": E.minimum,
        "floor": U.floor,
        "ceil": U.ceil,
        "round": U.round,
        "trunc": U.trunc,
        "isnan": E.isnan,
        "isfinite": E.isfinite,
        "floor_divide": E.floor_divide,
        "remainder": E.remainder,
        "logical_not": E.logical_not,
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "where": lambda a, cond, other: E.where(cond, a, other),
        # reductions
        "sum": R.sum,
        "mean": R.mean,
        "var": R.var,
        "std": R.std,
        "max": R.max,
        "min": R.min,
        "amax": R.amax,
        "amin": R.amin,
        "prod": R.prod,
        "logsumexp": R.logsumexp,
        "argmax": R.argmax,
        "argmin": R.argmin,
        "all": R.all,
        "any": R.any,
        # shape
        "reshape": S.reshape,
        "view": S.view,
        "view_as": S.view_as,
        "reshape_as": S.reshape_as,
        "flatten": S.flatten,
        "unflatten": S.unflatten,
        "squeeze": S.squeeze,
        "unsqueeze": S.unsqueeze,
        "transpose": S.transpose,
        "swapaxes": S.transpose,
        "t": S.t,
        "permute": S.permute,
        "expand": S.expand,
        "expand_as": S.expand_as,
        "repeat": S.repeat,
        "split": S.split,
        "chunk": S.chunk,
        "unbind": S.unbind,
        # indexing
        "gather": I.gather,
        "index_select": I.index_select,
        "masked_fill": I.masked_fill,
        "nonzero": I.nonzero,
        "tril": I.tril,
        "triu": I.triu,
        # linear algebra and nn
        "matmul": L.matmul,
        "mm": L.mm,
        "bmm": L.bmm,
        "dot": L.dot,
        "softmax": N.softmax,
        "log_softmax": N.log_softmax,
        # in place
        "add_": IP.add_,
        "sub_": IP.sub_,
        "mul_": IP.mul_,
        "div_": IP.div_,
        "zero_": IP.zero_,
        "fill_": IP.fill_,
        "copy_": IP.copy_,
        "uniform_": IP.uniform_,
        "normal_": IP.normal_,
    }
    for name in (
        "exp",
        "log",
        "sqrt",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "relu",
        "neg",
        "abs",
        "clamp",
        "clamp_min",
        "clamp_max",
        "pow",
        "reciprocal",
        "masked_fill",
        "square",
        "floor",
        "ceil",
        "round",
        "trunc",
        "sign",
    ):
        table[name + "_"] = IP.unary_(table[name])
    table["clip_"] = table["clamp_"]
    return table


def _install() -> None:
    table = _method_table()
    METHODS.update(table)
    for name, fn in table.items():
        setattr(Tensor, name, fn)
    # Operators bound straight to the op functions: no extra Python frame per operation.
    Tensor.__add__ = Tensor.__radd__ = E.add  # type: ignore[assignment,method-assign]
    Tensor.__mul__ = Tensor.__rmul__ = E.mul  # type: ignore[assignment,method-assign]
    Tensor.__sub__ = E.sub  # type: ignore[assignment,method-assign]
    Tensor.__rsub__ = E.rsub  # type: ignore[method-assign]
    Tensor.__truediv__ = E.div  # type: ignore[assignment,method-assign]
    Tensor.__rtruediv__ = E.rdiv  # type: ignore[method-assign]
    Tensor.__pow__ = E.pow  # type: ignore[assignment,method-assign]
    Tensor.__rpow__ = E.rpow  # type: ignore[method-assign]
    Tensor.__matmul__ = L.matmul  # type: ignore[method-assign]
    Tensor.__neg__ = U.neg  # type: ignore[method-assign]
    Tensor.__getitem__ = I.getitem  # type: ignore[method-assign]
    Tensor.__setitem__ = IP.setitem  # type: ignore[assignment,method-assign]
    Tensor.T = property(lambda self: S.permute(self, tuple(range(self.ndim))[::-1]))  # type: ignore[attr-defined]
    Tensor.mT = property(lambda self: S.transpose(self, -2, -1))  # type: ignore[attr-defined]


_install()

__all__ = ["conv", "elementwise", "index", "inplace", "linalg", "nnops", "reduce", "shape", "unary"]
