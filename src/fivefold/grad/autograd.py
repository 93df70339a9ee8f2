"""``fivefold.grad.autograd``: backward, grad, anomaly detection, gradcheck (torch's API)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fivefold.grad.engine import run_backward
from fivefold.grad.function import Function, FunctionCtx, once_differentiable
from fivefold.grad.graph import Node
from fivefold.grad.mode import STATE, enable_grad, no_grad, set_grad_enabled
from fivefold.grad.tensor import Size, Tensor, _wrap

__all__ = [
    "Function",
    "FunctionCtx",
    "Node",
    "backward",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "no_grad",
    "once_differentiable",
    "set_detect_anomaly",
    "set_grad_enabled",
]


CREATE_GRAPH_WARNING = (
    "Using backward() with create_graph=True will create a reference cycle between the parameter and its "
    "gradient which can cause a memory leak. We recommend using autograd.grad when creating the graph to "
    "avoid this. If you have to use this function, make sure to reset the .grad fields of your parameters "
    "to None after use to break the cycle and avoid the leak."
)


def _seq(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _make_grads(outputs: list[Tensor], grads: list[Any], create_graph: bool) -> list[Any]:
    result: list[Any] = []
    for i, (out, g) in enumerate(zip(outputs, grads, strict=True)):
        if g is None:
            if out._rg and out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            arr = np.ones(out._data.shape, out._data.dtype)
            result.append(_wrap(arr, None) if create_graph else arr)
            continue
        if not isinstance(g, Tensor):
            g = _wrap(np.asarray(g, out._data.dtype), None)
        if g._data.shape != out._data.shape:
            raise RuntimeError(
                f"Mismatch in shape: grad_output[{i}] has a shape of {Size(g._data.shape)!r} and "
                f"output[{i}] has a shape of {Size(out._data.shape)!r}."
            )
        if create_graph:
            result.append(g)
        else:
            data = g._data
            result.append(data if data.dtype == out._data.dtype else data.astype(out._data.dtype))
    return result


def backward(
    tensors: Any,
    grad_tensors: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    grad_variables: Any = None,
    inputs: Any = None,
) -> None:
    """Accumulates gradients of ``tensors`` into the ``.grad`` of leaves (or of ``inputs``)."""
    outs = _seq(tensors)
    grads = _seq(grad_tensors if grad_tensors is not None else grad_variables) or [None] * len(outs)
    if len(grads) != len(outs):
        raise RuntimeError("grad can be implicitly created only for scalar outputs")
    if inputs is not None:
        inputs = _seq(inputs)
        if not inputs:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    if retain_graph is None:
        retain_graph = create_graph
    if create_graph and inputs is None:  # torch warns about the leaf <-> grad reference cycle too
        warnings.warn(CREATE_GRAPH_WARNING, UserWarning, stacklevel=3)
    run_backward(
        outs,
        _make_grads(outs, grads, create_graph),
        retain_graph=retain_graph,
        create_graph=create_graph,
        inputs=inputs,
        accumulate=True,
    )


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    only_inputs: bool = True,
    allow_unused: bool | None = None,
    is_grads_batched: bool = False,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned rather than accumulated."""
    outs = _seq(outputs)
    ins = _seq(inputs)
    grads = _seq(grad_outputs) or [None] * len(outs)
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    result = run_backward(
        outs,
        _make_grads(outs, grads, create_graph),
        retain_graph=retain_graph,
        create_graph=create_graph,
        inputs=ins,
        accumulate=False,
        allow_unused=allow_unused,
    )
    assert result is not None
    fixed: list[Tensor | None] = []
    for t, g in zip(ins, result, strict=True):
        if g is None and materialize_grads:
            g = _wrap(np.zeros(t._data.shape, t._data.dtype), None)
        elif g is not None and not create_graph:
            g._vc = [0]
        fixed.append(g)
    return tuple(fixed)


class set_detect_anomaly:
    """Turns anomaly detection on or off (at once, and restores on ``with`` exit)."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.prev = (STATE.anomaly, STATE.anomaly_check_nan)
        STATE.anomaly = mode
        STATE.anomaly_check_nan = check_nan

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        STATE.anomaly, STATE.anomaly_check_nan = self.prev


class detect_anomaly:
    """Context manager: records each node's forward stack and names the op whose backward gave NaN."""

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan
        self.prev = (STATE.anomaly, STATE.anomaly_check_nan)
        warnings.warn(
            "Anomaly Detection has been enabled. This mode will increase the runtime and should "
            "only be enabled for debugging.",
            UserWarning,
            stacklevel=2,
        )

    def __enter__(self) -> None:
        STATE.anomaly, STATE.anomaly_check_nan = True, self.check_nan

    def __exit__(self, *exc: object) -> None:
        STATE.anomaly, STATE.anomaly_check_nan = self.prev


def is_anomaly_enabled() -> bool:
    return STATE.anomaly


def gradcheck(func: Any, inputs: Any, **kwargs: Any) -> bool:
    from fivefold.grad.gradcheck import gradcheck as _gc

    return _gc(func, inputs, **kwargs)


def gradgradcheck(func: Any, inputs: Any, **kwargs: Any) -> bool:
    from fivefold.grad.gradcheck import gradgradcheck as _ggc

    return _ggc(func, inputs, **kwargs)
