"""``Tensor``: a NumPy array with autograd state, and torch's factory functions.

The hot path matters (a training step of a tiny model is a few dozen ops), so a tensor
is a ``__slots__`` object built by :func:`_wrap` without ``__init__``, and operators are
bound straight to the op functions once :mod:`fivefold.grad.functions` is imported.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad import graph as _graph_module
from fivefold.grad.engine import run_backward
from fivefold.grad.graph import Node, RemovableHandle

_new = object.__new__
_ndarray = np.ndarray

NONLEAF_GRAD_WARNING = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad attribute "
    "won't be populated during autograd.backward(). If you indeed want the .grad field to be populated "
    "for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you access the non-leaf Tensor "
    "by mistake, make sure you access the leaf Tensor instead. See github.com/pytorch/pytorch/pull/30531 "
    "for more information."
)


class Size(tuple[int, ...]):
    """A tensor shape; prints like torch's."""

    def __repr__(self) -> str:
        return f"torch.Size([{', '.join(str(s) for s in self)}])"

    def numel(self) -> int:
        return int(np.prod(self)) if self else 1


class Tensor:
    """An n-dimensional array that records the operations applied to it."""

    __slots__ = (
        "__weakref__",
        "_accum",
        "_base",
        "_data",
        "_grad",
        "_hooks",
        "_onr",
        "_rg",
        "_vc",
        "grad_fn",
    )
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator
    _data: Any  # the np.ndarray
    _rg: bool  # requires_grad
    grad_fn: Node | None
    _grad: Tensor | None
    _vc: list[int]  # version counter, shared with views
    _accum: Any  # this leaf's AccumulateGrad, made on first use
    _base: Tensor | None  # for views: the tensor whose memory they alias
    _hooks: list[Callable[..., Any]] | None  # a leaf's tensor hooks
    _onr: int  # output number within grad_fn

    def __init__(self, data: Any = None, *, requires_grad: bool = False) -> None:
        arr = np.asarray([] if data is None else data)
        if (arr.dtype.kind in "fiu" and arr.dtype.kind != "f") or arr.dtype == D.NP_F64:
            arr = arr.astype(D.default_float())
        _init(self, np.array(arr, copy=True), None)
        if requires_grad:
            self.requires_grad_()

    # ----------------------------------------------------------------- autograd state
    @property
    def data(self) -> Tensor:
        """The same storage, detached, with its own version counter (torch's ``.data``)."""
        return _wrap(self._data, None)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data

    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None:
            if not value:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use a "
                    "computed variable in a subgraph that doesn't require differentiation use "
                    "var_no_grad = var.detach()."
                )
            return
        if value and D.CATEGORY.get(self._data.dtype, 2) != 2:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._rg = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self) -> Tensor | None:
        if self.grad_fn is not None and not self.retains_grad:
            warnings.warn(NONLEAF_GRAD_WARNING, UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None and value._data.shape != self._data.shape:
            raise RuntimeError("assigned grad has data of a different size")
        self._grad = value

    @property
    def retains_grad(self) -> bool:
        fn = self.grad_fn
        return fn is not None and fn._extra is not None and self._onr in fn._extra.retain

    def retain_grad(self) -> None:
        if self.grad_fn is None:
            if not self._rg:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        self.grad_fn.extra().retain[self._onr] = weakref.ref(self)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn.add_tensor_hook(self._onr, hook)
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    @property
    def _version(self) -> int:
        return self._vc[0]

    @property
    def output_nr(self) -> int:
        return self._onr

    def _is_view(self) -> bool:
        return self._base is not None

    def detach(self) -> Tensor:
        """Shares storage and version counter; no graph."""
        t = _wrap(self._data, None)
        t._vc = self._vc
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._rg = False
        return self

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[Tensor] | Tensor | None = None,
    ) -> None:
        fn = self.grad_fn
        if gradient is None and inputs is None and not create_graph and fn is not None:
            # The common ``loss.backward()``: skip the general argument handling.
            data = self._data
            if data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            run_backward(
                (self,),
                (np.ones(data.shape, data.dtype),),
                retain_graph=bool(retain_graph),
                create_graph=False,
            )
            return
        from fivefold.grad import autograd

        autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    # ----------------------------------------------------------------- plain accessors
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None) -> Any:
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_dim(dim, self._data.ndim)]

    @property
    def dtype(self) -> D.dtype:
        return D.BY_NP[self._data.dtype]

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def ndim(self) -> int:
        return int(self._data.ndim)

    def dim(self) -> int:
        return int(self._data.ndim)

    def numel(self) -> int:
        return int(self._data.size)

    def nelement(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return int(self._data.itemsize)

    def is_floating_point(self) -> bool:
        return bool(self._data.dtype.kind == "f")

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def stride(self) -> tuple[int, ...]:
        return tuple(s // self._data.itemsize for s in self._data.strides)

    def item(self) -> Any:
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray[Any, Any]:
        if self._rg and not force:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            )
        arr: np.ndarray[Any, Any] = self._data
        return arr

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self._data.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        from fivefold.grad._format import tensor_repr

        return tensor_repr(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild, (self._data, self._rg))

    def __getstate__(self) -> Any:
        return (self._data, self._rg)

    # ------------------------------------------------------------- conversions
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, D.dtype):
                dtype = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
        if dtype is None:
            return self
        return _S.cast(self, D.to_np(dtype))

    def type(self, dtype: Any) -> Tensor:
        return _S.cast(self, D.to_np(dtype))

    def type_as(self, other: Tensor) -> Tensor:
        return _S.cast(self, other._data.dtype)

    def float(self) -> Tensor:
        return _S.cast(self, D.NP_F32)

    def double(self) -> Tensor:
        return _S.cast(self, D.NP_F64)

    def half(self) -> Tensor:
        return _S.cast(self, D.float16.np)

    def long(self) -> Tensor:
        return _S.cast(self, D.NP_I64)

    def int(self) -> Tensor:
        return _S.cast(self, D.int32.np)

    def bool(self) -> Tensor:
        return _S.cast(self, D.NP_BOOL)

    def cpu(self) -> Tensor:
        return self

    def clone(self, *, memory_format: Any = None) -> Tensor:
        return _E.clone(self)

    def contiguous(self, memory_format: Any = None) -> Tensor:
        return self

    # ------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return _E.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _E.add(self, other)

    def __sub__(self, other: Any) -> Tensor:
        return _E.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _E.rsub(self, other)

    def __mul__(self, other: Any) -> Tensor:
        return _E.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _E.mul(self, other)

    def __truediv__(self, other: Any) -> Tensor:
        return _E.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _E.rdiv(self, other)

    def __floordiv__(self, other: Any) -> Tensor:
        return _E.floor_divide(self, other)

    def __mod__(self, other: Any) -> Tensor:
        return _E.remainder(self, other)

    def __pow__(self, other: Any) -> Tensor:
        return _E.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _E.rpow(self, other)

    def __matmul__(self, other: Tensor) -> Tensor:
        return _L.matmul(self, other)

    def __rmatmul__(self, other: Tensor) -> Tensor:
        return _L.matmul(_as_tensor(other), self)

    def __neg__(self) -> Tensor:
        return _U.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _U.abs(self)

    def __invert__(self) -> Tensor:
        return _E.logical_not(self) if self._data.dtype == D.NP_BOOL else _E.bitwise_not(self)

    def __and__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.logical_and if self._data.dtype == D.NP_BOOL else np.bitwise_and)

    def __or__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.logical_or if self._data.dtype == D.NP_BOOL else np.bitwise_or)

    def __xor__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.logical_xor if self._data.dtype == D.NP_BOOL else np.bitwise_xor)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _E.compare(self, other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _E.compare(self, other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return _E.compare(self, other, np.greater_equal)

    def __getitem__(self, key: Any) -> Tensor:
        return _I.getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        _IP.setitem(self, key, value)

    def __iadd__(self, other: Any) -> Tensor:
        return _IP.inplace(self, _E.add, other)

    def __isub__(self, other: Any) -> Tensor:
        return _IP.inplace(self, _E.sub, other)

    def __imul__(self, other: Any) -> Tensor:
        return _IP.inplace(self, _E.mul, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return _IP.inplace(self, _E.div, other)

    def __getattr__(self, name: str) -> Any:
        # Ops named like torch's methods (tensor.exp(), tensor.sum(dim=1), ...) come from METHODS.
        fn = METHODS.get(name)
        if fn is None:
            raise AttributeError(f"'Tensor' object has no attribute '{name}'")
        return fn.__get__(self)


# Filled by fivefold.grad.functions: torch method name -> function(self, ...).
METHODS: dict[str, Callable[..., Any]] = {}


def _init(t: Tensor, data: np.ndarray[Any, Any], fn: Node | None) -> None:
    t._data = data
    t.grad_fn = fn
    t._rg = fn is not None
    t._grad = None
    t._vc = [0]
    t._accum = None
    t._base = None
    t._hooks = None
    t._onr = 0


def _wrap(data: Any, fn: Node | None) -> Tensor:
    """A tensor around ``data`` (no copy), produced by ``fn`` (None for a constant)."""
    t: Tensor = _new(Tensor)
    # NumPy ufuncs return scalars for 0-d inputs; keep an array so in-place ops work.
    _init(t, data if data.__class__ is _ndarray else np.asarray(data), fn)
    return t


_graph_module._WRAP.append(_wrap)


def _rebuild(data: Any, rg: bool) -> Tensor:
    t = _wrap(data, None)
    t._rg = rg
    return t


def _dim(d: int, ndim: int) -> int:
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if d < lo or d > hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {d})")
    return d + max(ndim, 1) if d < 0 else d


def _as_tensor(x: Any) -> Tensor:
    from fivefold.grad.creation import tensor

    return x if isinstance(x, Tensor) else tensor(x)


# Bound at the end to break the import cycle (the op modules import Tensor from here).
from fivefold.grad.functions import elementwise as _E  # noqa: E402
from fivefold.grad.functions import index as _I  # noqa: E402
from fivefold.grad.functions import inplace as _IP  # noqa: E402
from fivefold.grad.functions import linalg as _L  # noqa: E402
from fivefold.grad.functions import shape as _S  # noqa: E402
from fivefold.grad.functions import unary as _U  # noqa: E402
