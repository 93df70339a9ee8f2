"""Minimise f(x) = x^2 by gradient descent; x shrinks by (1 - 2*lr) each step.

Run: python examples/grad/x_squared.py
Every example here takes the library as an argument, so the same code runs on torch.
"""

from __future__ import annotations

from typing import Any

import fivefold.grad


def main(lib: Any = fivefold.grad, start: float = 5.0, lr: float = 0.1, steps: int = 50) -> list[float]:
    x = lib.tensor(start, requires_grad=True)
    trajectory = [x.item()]
    for _ in range(steps):
        loss = x**2
        loss.backward()
        with lib.no_grad():
            x -= lr * x.grad
        x.grad.zero_()
        trajectory.append(x.item())
    return trajectory


if __name__ == "__main__":
    path = main()
    print(f"x: {path[0]} -> {path[-1]:.3e} after {len(path) - 1} steps")
