"""torch-like dtype objects over NumPy dtypes, and torch's type-promotion rules.

NumPy 2 (NEP 50) and torch disagree in a few places: ``int64 + float32`` is float64 in
NumPy and float32 in torch, a 0-d float64 array promotes a float32 array in NumPy but a
0-d tensor does not in torch, and a Python float turns an integer tensor into the
*default* dtype in torch. Everything here follows torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class dtype:
    """A tensor element type (``fivefold.grad.float32`` ...)."""

    __slots__ = ("category", "is_floating_point", "itemsize", "name", "np")

    def __init__(self, name: str, np_dtype: Any, category: int) -> None:
        self.name = name
        self.np: np.dtype[Any] = np.dtype(np_dtype)
        self.category = category  # 0 bool, 1 integer, 2 floating point
        self.is_floating_point = category == 2
        self.itemsize = self.np.itemsize

    def __repr__(self) -> str:
        return f"fivefold.grad.{self.name}"

    def __reduce__(self) -> str:
        return self.name


bool_ = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

# torch's ScalarType names, used in its error messages.
TORCH_NAME = {
    "float32": "Float",
    "float64": "Double",
    "float16": "Half",
    "int64": "Long",
    "int32": "Int",
    "int16": "Short",
    "int8": "Char",
    "uint8": "Byte",
    "bool": "Bool",
}

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
BY_NP: dict[Any, dtype] = {d.np: d for d in ALL}
CATEGORY: dict[Any, int] = {d.np: d.category for d in ALL}
NP_F32 = float32.np
NP_F64 = float64.np
NP_I64 = int64.np
NP_BOOL = bool_.np


class _Default:
    float_np: np.dtype[Any] = NP_F32


def get_default_dtype() -> dtype:
    return BY_NP[_Default.float_np]


def set_default_dtype(d: dtype) -> None:
    if not d.is_floating_point:
        raise TypeError("only floating-point types are supported as the default type")
    _Default.float_np = d.np


def default_float() -> np.dtype[Any]:
    return _Default.float_np


def to_np(d: Any) -> np.dtype[Any]:
    """A NumPy dtype from a fivefold dtype, a NumPy dtype or a Python type."""
    if isinstance(d, dtype):
        return d.np
    if d is float:
        return _Default.float_np
    if d is int:
        return NP_I64
    if d is bool:
        return NP_BOOL
    out: np.dtype[Any] = np.dtype(d)
    return out


def category(np_dtype: Any) -> int:
    c = CATEGORY.get(np_dtype)
    if c is None:
        raise TypeError(f"unsupported dtype {np_dtype}")
    return c


def _promote_same_rank(da: Any, db: Any) -> Any:
    ca, cb = category(da), category(db)
    if ca == cb:
        return np.promote_types(da, db)
    return da if ca > cb else db


def result_type(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> Any:
    """torch.result_type for two tensors (0-d tensors rank below dimensioned ones)."""
    da, db = a.dtype, b.dtype
    if da is db:
        return da
    za, zb = a.ndim == 0, b.ndim == 0
    if za == zb:
        return _promote_same_rank(da, db)
    if za:  # a is the 0-d one
        return da if category(da) > category(db) else db
    return db if category(db) > category(da) else da


def scalar_result_type(a: np.ndarray[Any, Any], s: Any) -> Any:
    """torch.result_type(tensor, python_scalar)."""
    da = a.dtype
    ca = CATEGORY.get(da, 2)
    if isinstance(s, bool):
        return da
    if isinstance(s, int):
        return NP_I64 if ca == 0 else da
    if isinstance(s, float):
        return da if ca == 2 else _Default.float_np
    return da
