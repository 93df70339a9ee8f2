"""Fit y = a*x + b by gradient descent: lr=0.1 diverges, lr=0.01 converges (as it does in torch).

With x on [0, 10] the loss's curvature in a is 2*mean(x^2) ~ 68, so a step of 0.1 overshoots
(0.1 * 68 > 2) and every step grows the error, while 0.01 contracts it.

Run: python examples/grad/linear_fit.py
"""

from __future__ import annotations

from typing import Any

import fivefold.grad
from fivefold.grad.demo import fit_line


def fit(lib: Any = fivefold.grad, lr: float = 0.01, steps: int = 100) -> dict[str, Any]:
    """One run of the demo's line fit, with ``lib`` fivefold.grad or torch."""
    a, b, losses = fit_line(steps, lr, lib=lib)
    return {"a": a, "b": b, "losses": losses}


def main(lib: Any = fivefold.grad) -> dict[str, dict[str, Any]]:
    return {"lr=0.1": fit(lib, 0.1, 20), "lr=0.01": fit(lib, 0.01, 300)}


if __name__ == "__main__":
    for name, run in main().items():
        print(
            f"{name}: a={run['a']:.4g} b={run['b']:.4g} "
            f"loss {run['losses'][0]:.3g} -> {run['losses'][-1]:.3g}"
        )
