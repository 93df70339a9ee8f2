"""``autograd.Function``: user-defined ops with a hand-written backward, as in torch.

``forward(ctx, *args)`` runs without recording; ``apply`` then wires one node named
``<ClassName>Backward`` whose edges are the tensor arguments. ``backward(ctx, *grads)``
receives tensors (recorded when ``create_graph`` is set) and returns one gradient per
forward argument (None for non-tensors).
"""

from __future__ import annotations

from typing import Any, ClassVar

from fivefold.grad.graph import FREED_MSG, Node, check_versions, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap


class FunctionCtx:
    """What forward leaves for backward: saved tensors (version-checked) and any attributes."""

    needs_input_grad: tuple[bool, ...]

    def __init__(self) -> None:
        self._to_save: tuple[Any, ...] = ()
        self._versions: tuple[Any, ...] = ()
        self._freed = False

    def save_for_backward(self, *tensors: Any) -> None:
        self._to_save = tensors
        self._versions = tuple((t._vc, t._vc[0], t._data, t) for t in tensors if isinstance(t, Tensor))

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        if self._freed:
            raise RuntimeError(FREED_MSG)
        check_versions(self._versions)  # like torch: checked when unpacked, not before backward
        return self._to_save

    def mark_non_differentiable(self, *tensors: Any) -> None:
        """Accepted for compatibility; outputs are differentiable here."""

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted for compatibility; missing output gradients are always zeros here."""


class _FunctionBackward(Node):
    __slots__ = ("_nout", "ctx", "fn", "positions", "shapes")
    ctx: Any
    fn: Any
    positions: Any
    shapes: Any

    def apply(self, grads: Any, ops: Any) -> list[Any]:
        import numpy as np

        if self._nout == 1:
            grads = [grads]
        full = [
            ops.wrap(g) if g is not None else ops.wrap(np.zeros(shape, dtype))
            for g, (shape, dtype) in zip(grads, self.shapes, strict=True)
        ]
        result = self.fn.backward(self.ctx, *full)
        if not isinstance(result, tuple):
            result = (result,)
        out = []
        for pos in self.positions:
            g = result[pos] if pos < len(result) else None
            out.append(None if g is None else ops.unwrap(g if isinstance(g, Tensor) else _wrap(g, None)))
        return out

    def _release(self) -> None:
        self.ctx._freed = True
        self.ctx._to_save = ()


class Function:
    """Subclass with static ``forward(ctx, ...)`` and ``backward(ctx, *grads)``; call ``apply``."""

    _node_classes: ClassVar[dict[type, type[_FunctionBackward]]] = {}

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom "
            "autograd.Function to use it with backward mode AD."
        )

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._rg for a in args)
        recording = STATE.enabled and any(ctx.needs_input_grad)
        prev = STATE.enabled
        STATE.enabled = False
        try:
            result = cls.forward(ctx, *args, **kwargs)
        finally:
            STATE.enabled = prev
        if not recording:
            return result
        outs = result if isinstance(result, tuple) else (result,)
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        node_cls = Function._node_classes.get(cls)
        if node_cls is None:
            node_cls = type(f"{cls.__name__}Backward", (_FunctionBackward,), {"__slots__": ()})
            Function._node_classes[cls] = node_cls
        node = node_cls(tuple(edge(args[i]) for i in positions))
        node.ctx, node.fn, node.positions, node._nout = ctx, cls, positions, len(outs)
        node.shapes = [(o._data.shape, o._data.dtype) for o in outs]
        wrapped = []
        for i, o in enumerate(outs):
            t = _wrap(o._data, node)
            t._onr = i
            wrapped.append(t)
        return tuple(wrapped) if isinstance(result, tuple) else wrapped[0]


def once_differentiable(fn: Any) -> Any:
    """Accepted for compatibility (backward formulas here are always differentiable or raise)."""
    return fn
