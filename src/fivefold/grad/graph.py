"""The autograd graph: nodes, leaf accumulators and hooks (the engine is in ``engine.py``).

A node is created by each differentiable op when grad mode is on and an input requires
grad. ``next_functions`` points at the nodes that produced the op's inputs (or a leaf's
``AccumulateGrad``).
"""

from __future__ import annotations

import itertools
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fivefold.grad.mode import STATE

if TYPE_CHECKING:
    from fivefold.grad.tensor import Tensor

_SEQ = itertools.count()
_WRAP: list[Any] = []  # tensor._wrap, filled in by tensor.py (which imports this module)
_ACC_SEQ = itertools.count(1 << 62)

FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph "
    "a second time or if you need to access saved tensors after calling backward."
)
ANOMALY_HINT = (
    "Hint: enable anomaly detection to find the operation that failed to compute its gradient, with "
    "torch.autograd.set_detect_anomaly(True, check_nan=False)."
)
_TORCH_TYPE = {
    "float32": "FloatTensor",
    "float64": "DoubleTensor",
    "float16": "HalfTensor",
    "int64": "LongTensor",
    "int32": "IntTensor",
    "int16": "ShortTensor",
    "int8": "CharTensor",
    "uint8": "ByteTensor",
    "bool": "BoolTensor",
}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


class Node:
    """A backward function. Subclasses set ``__slots__`` for what they save and ``apply``."""

    __slots__ = ("__weakref__", "_extra", "_freed", "_saved", "_seq", "next_functions")
    _nout = 1  # how many outputs the forward op had (split has several)
    _saves = True  # whether backward needs saved values (freed after backward)

    def __init__(self, next_functions: tuple[tuple[Node | None, int], ...]) -> None:
        self.next_functions = next_functions
        self._seq = next(_SEQ)
        self._saved: tuple[tuple[list[int], int, Any, Any], ...] = ()  # (counter, version, array, owner)
        self._freed = False
        self._extra: _Extra | None = None
        if STATE.anomaly:
            self.extra().metadata["traceback_"] = "".join(traceback.format_stack()[:-3])

    def extra(self) -> _Extra:
        """Hooks, retained-grad targets and anomaly metadata: rarely used, so kept aside."""
        if self._extra is None:
            self._extra = _Extra()
        return self._extra

    @property
    def metadata(self) -> Any:
        return self.extra().metadata

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {id(self):#x}>"

    def __call__(self, *grads: Any) -> Any:
        from fivefold.grad.functions import backend

        out = self.apply(grads[0]._data if self._nout == 1 else [g._data for g in grads], backend.NP)
        return tuple(backend.NP.wrap(o) for o in out)

    def apply(self, grad: Any, ops: Any) -> Sequence[Any]:
        raise NotImplementedError

    def release(self) -> None:
        """Drops what backward needed; a second backward then raises torch's error."""
        if self._saves:
            self._freed = True
            self._release()

    def _release(self) -> None:
        """Subclasses drop their saved arrays here."""

    def register_hook(self, fn: Callable[..., Any]) -> RemovableHandle:
        """``fn(grad_inputs, grad_outputs)`` runs after this node; may return new grad_inputs."""
        self.extra().hooks.append(fn)
        return RemovableHandle(self.extra().hooks, fn)

    def register_prehook(self, fn: Callable[..., Any]) -> RemovableHandle:
        """``fn(grad_outputs)`` runs before this node; may return new grad_outputs."""
        self.extra().prehooks.append(fn)
        return RemovableHandle(self.extra().prehooks, fn)

    def add_tensor_hook(self, output_nr: int, fn: Callable[..., Any]) -> RemovableHandle:
        hooks = self.extra().thooks.setdefault(output_nr, [])
        hooks.append(fn)
        return RemovableHandle(hooks, fn)

    def check_saved(self) -> None:
        check_versions(self._saved)


class _Extra:
    __slots__ = ("hooks", "metadata", "prehooks", "retain", "thooks")
    hooks: Any
    metadata: Any
    prehooks: Any
    retain: Any
    thooks: Any

    def __init__(self) -> None:
        self.hooks: list[Callable[..., Any]] = []
        self.prehooks: list[Callable[..., Any]] = []
        self.thooks: dict[int, list[Callable[..., Any]]] = {}
        self.retain: dict[int, Any] = {}
        self.metadata: dict[str, Any] = {}


def check_versions(entries: Any) -> None:
    """Raises torch's error when a saved tensor was modified in place after it was saved."""
    for vc, version, array, owner in entries:
        if vc[0] != version:
            # A saved input names the op that produced it *now*; a saved output names this node.
            producer = owner if owner is None or isinstance(owner, Node) else owner.grad_fn
            kind = _TORCH_TYPE.get(str(array.dtype), "Tensor")
            where = ""
            if producer is not None:
                op = producer.name()
                op = op[: op.rfind("Backward")] if "Backward" in op else op
                where = f", which is output 0 of {op},"
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [torch.{kind} {_shape_text(array.shape)}]{where} is at version "
                f"{vc[0]}; expected version {version} instead. {ANOMALY_HINT}"
            )


class RemovableHandle:
    """What ``register_hook`` returns; ``remove()`` unregisters the hook."""

    __slots__ = ("_fn", "_hooks")
    _fn: Any
    _hooks: Any

    def __init__(self, hooks: list[Callable[..., Any]], fn: Callable[..., Any]) -> None:
        self._hooks = hooks
        self._fn = fn

    def remove(self) -> None:
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


class AccumulateGrad(Node):
    """The sink for a leaf: runs the leaf's hooks, then adds into ``leaf.grad``."""

    __slots__ = ("variable",)
    variable: Any
    _saves = False

    def __init__(self, variable: Tensor) -> None:
        self.next_functions = ()
        self._seq = next(_ACC_SEQ)
        self._saved = ()
        self._freed = False
        self._extra = None
        self.variable = variable

    def apply(self, grad: Any, ops: Any) -> Sequence[Any]:
        var = self.variable
        if var._hooks is not None:
            grad = _run_tensor_hooks(var._hooks, grad, ops)
        old = var._grad
        if ops.raw:
            if old is None:
                # Keep the engine's buffer when nothing else can see it (as torch steals it);
                # copy when it is shared with another leaf, the caller or a view.
                if sys.getrefcount(grad) > 3 or grad.base is not None or not grad.flags.writeable:
                    grad = grad.copy()
                var._grad = _WRAP[0](grad, None)
            else:
                data = old._data
                if data.shape == grad.shape:
                    data += grad
                else:
                    old._data = data + grad
                old._vc[0] += 1
        elif old is None:
            var._grad = grad
        else:
            var._grad = old + grad
        return ()


def _run_tensor_hooks(hooks: list[Callable[..., Any]], grad: Any, ops: Any) -> Any:
    for hook in list(hooks):
        as_tensor = ops.wrap(grad)
        result = hook(as_tensor)
        if result is not None:
            grad = ops.unwrap(result)
    return grad


def edge(t: Tensor) -> tuple[Node | None, int]:
    """Where a gradient for ``t`` has to go: its grad_fn, its accumulator, or nowhere."""
    fn = t.grad_fn
    if fn is not None:
        return (fn, t._onr)
    if t._rg:
        acc = t._accum
        if acc is None:
            acc = t._accum = AccumulateGrad(t)
        return (acc, 0)
    return (None, 0)
