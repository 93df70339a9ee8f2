"""Finite-difference checks of backward formulas (float64 central differences), like torch's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fivefold.grad.engine import partial_grads
from fivefold.grad.tensor import Tensor, _wrap


class GradcheckError(RuntimeError):
    """Raised by ``gradcheck`` when analytical and numerical Jacobians disagree."""


def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _differentiable(t: Any) -> bool:
    return isinstance(t, Tensor) and t.requires_grad


def _outputs(func: Callable[..., Any], inputs: Sequence[Any]) -> list[Tensor]:
    return [o for o in _as_tuple(func(*inputs)) if isinstance(o, Tensor)]


def numerical_jacobian(
    func: Callable[..., Any], inputs: Sequence[Any], eps: float
) -> list[list[np.ndarray[Any, Any]]]:
    """J[i][k]: d output_k / d input_i, shaped (input numel, output numel)."""
    # Grad mode stays on: for gradgradcheck, func itself runs a backward pass.
    outs = _outputs(func, inputs)
    jac: list[list[np.ndarray[Any, Any]]] = []
    for t in inputs:
        if not _differentiable(t):
            jac.append([])
            continue
        flat = t._data.reshape(-1)
        cols = [np.zeros((flat.size, o._data.size)) for o in outs]
        for j in range(flat.size):
            orig = flat[j].copy()
            flat[j] = orig + eps
            plus = [o._data.astype(np.float64).reshape(-1) for o in _outputs(func, inputs)]
            flat[j] = orig - eps
            minus = [o._data.astype(np.float64).reshape(-1) for o in _outputs(func, inputs)]
            flat[j] = orig
            for k in range(len(outs)):
                cols[k][j] = (plus[k] - minus[k]) / (2 * eps)
        jac.append(cols)
    return jac


def analytical_jacobian(func: Callable[..., Any], inputs: Sequence[Any]) -> list[list[np.ndarray[Any, Any]]]:
    outs = _outputs(func, inputs)
    diff = [t for t in inputs if _differentiable(t)]
    jac = [[np.zeros((t._data.size, o._data.size)) for o in outs] for t in diff]
    for k, out in enumerate(outs):
        if out.grad_fn is None and not out.requires_grad:
            continue
        for m in range(out._data.size):
            seed = np.zeros(out._data.size, out._data.dtype)
            seed[m] = 1
            grads = partial_grads([out], [seed.reshape(out._data.shape)], diff, create_graph=False)
            for i, g in enumerate(grads):
                if g is not None:
                    jac[i][k][:, m] = g._data.reshape(-1)
    it = iter(jac)
    return [next(it) if _differentiable(t) else [] for t in inputs]


def gradcheck(
    func: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    **_: Any,
) -> bool:
    """True when backward matches central differences for every input and output element."""
    ins = _as_tuple(inputs)
    for t in ins:
        if _differentiable(t) and t._data.dtype != np.float64:
            import warnings

            warnings.warn(
                "Input is not a double precision floating point tensor; gradcheck may fail",
                UserWarning,
                stacklevel=2,
            )
    numerical = numerical_jacobian(func, ins, eps)
    analytical = analytical_jacobian(func, ins)
    for i, (num_cols, ana_cols) in enumerate(zip(numerical, analytical, strict=True)):
        for k, (n, a) in enumerate(zip(num_cols, ana_cols, strict=True)):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"Jacobian mismatch for output {k} with respect to input {i},\n"
                    f"numerical:{n}\nanalytical:{a}\n"
                )
    return True


def gradgradcheck(
    func: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    **_: Any,
) -> bool:
    """gradcheck of the first derivative (built with create_graph) against finite differences."""
    ins = _as_tuple(inputs)
    seeds = [
        _wrap(np.random.default_rng(0).standard_normal(o._data.shape), None) for o in _outputs(func, ins)
    ]

    def first(*xs: Any) -> tuple[Any, ...]:
        outs = _outputs(func, xs)
        grads = partial_grads(outs, seeds, [x for x in xs if _differentiable(x)], create_graph=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first, ins, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
