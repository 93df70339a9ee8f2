"""fivefold.grad vs torch vs HIPS autograd vs micrograd: time per training step, single-threaded BLAS.

Workloads (each library does the same arithmetic from the same initial values):
  line    y = a*x + b on 5 points, MSE, plain SGD step
  mlp2    MLP 2-16-16-1 (relu) on 100 points, MSE, SGD step
  mnist   MLP 784-256-10 (relu), batch 64, cross-entropy, SGD step

Run: python benchmarks/grad.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _time(step: Callable[[], Any], min_time: float) -> float:
    """Median CPU seconds of this process per call over repeated blocks (after a warm-up).

    Process CPU time rather than wall time: on a shared machine other processes' load
    would otherwise be charged to whichever library happened to run during it.
    """
    for _ in range(5):
        step()
    n = 1
    while True:
        t0 = time.process_time()
        for _ in range(n):
            step()
        dt = time.process_time() - t0
        if dt > min_time / 5:
            break
        n *= 2
    samples = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            step()
        samples.append((time.process_time() - t0) / n)
    return float(np.median(samples))


def data(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "line":
        x = rng.standard_normal((5, 1)).astype(np.float32)
        return {
            "x": x,
            "y": (3 * x + 1).astype(np.float32),
            "a": np.array([0.5], np.float32),
            "b": np.array([0.0], np.float32),
        }
    if name == "mlp2":
        sizes = [2, 16, 16, 1]
        n = 100
    else:
        sizes = [784, 256, 10]
        n = 64
    out: dict[str, np.ndarray] = {"x": rng.standard_normal((n, sizes[0])).astype(np.float32)}
    if name == "mlp2":
        out["y"] = rng.standard_normal((n, 1)).astype(np.float32)
    else:
        out["y"] = rng.integers(0, 10, n)
    for i, (fi, fo) in enumerate(itertools.pairwise(sizes)):
        bound = 1 / np.sqrt(fi)
        out[f"W{i}"] = rng.uniform(-bound, bound, (fo, fi)).astype(np.float32)
        out[f"b{i}"] = rng.uniform(-bound, bound, (fo,)).astype(np.float32)
    return out


LR = 0.01


# ----------------------------------------------------------------------------- fivefold.grad / torch
def torchlike_step(lib: Any, name: str, d: dict[str, np.ndarray]) -> Callable[[], Any]:
    """One training step written against torch's API; runs on torch and on fivefold.grad unchanged."""
    t = {k: lib.tensor(v) for k, v in d.items()}
    x, y = t.pop("x"), t.pop("y")
    params = [v.requires_grad_() for v in t.values()]
    opt = lib.optim.SGD(params, lr=LR)
    F = lib.nn.functional

    if name == "line":
        a, b = params

        def forward() -> Any:
            return ((a * x + b - y) ** 2).mean()
    elif name == "mlp2":
        W0, b0, W1, b1, W2, b2 = params

        def forward() -> Any:
            h = F.linear(x, W0, b0).relu()
            h = F.linear(h, W1, b1).relu()
            return F.mse_loss(F.linear(h, W2, b2), y)
    else:
        W0, b0, W1, b1 = params

        def forward() -> Any:
            return F.cross_entropy(F.linear(F.linear(x, W0, b0).relu(), W1, b1), y)

    def step() -> Any:
        opt.zero_grad()
        loss = forward()
        loss.backward()
        opt.step()
        return loss

    return step


# ----------------------------------------------------------------------------- HIPS autograd
def autograd_step(name: str, d: dict[str, np.ndarray]) -> Callable[[], Any]:
    import autograd.numpy as anp
    from autograd import grad

    x, y = d["x"], d["y"]
    params = [v.copy() for k, v in d.items() if k not in ("x", "y")]

    if name == "line":

        def loss(ps: list[Any]) -> Any:
            a, b = ps
            return anp.mean((a * x + b - y) ** 2)
    elif name == "mlp2":

        def loss(ps: list[Any]) -> Any:
            W0, b0, W1, b1, W2, b2 = ps
            h = anp.maximum(anp.dot(x, W0.T) + b0, 0)
            h = anp.maximum(anp.dot(h, W1.T) + b1, 0)
            return anp.mean((anp.dot(h, W2.T) + b2 - y) ** 2)
    else:
        onehot = np.eye(10, dtype=np.float32)[y]

        def loss(ps: list[Any]) -> Any:
            W0, b0, W1, b1 = ps
            h = anp.maximum(anp.dot(x, W0.T) + b0, 0)
            z = anp.dot(h, W1.T) + b1
            z = z - anp.max(z, axis=1, keepdims=True)
            logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
            return -anp.mean(anp.sum(logp * onehot, axis=1))

    g = grad(loss)

    def step() -> Any:
        grads = g(params)
        for p, gp in zip(params, grads, strict=True):
            p -= LR * gp

    return step


# ----------------------------------------------------------------------------- micrograd
def micrograd_step(name: str, d: dict[str, np.ndarray]) -> Callable[[], Any] | None:
    from micrograd.engine import Value

    if name == "mnist":
        return None  # scalar autograd: 200k multiply nodes per step is not feasible
    x, y = d["x"].tolist(), d["y"].reshape(-1).tolist()
    if name == "line":
        a, b = Value(float(d["a"][0])), Value(float(d["b"][0]))
        params = [a, b]

        def loss() -> Any:
            total = Value(0.0)
            for xi, yi in zip(x, y, strict=True):
                total = total + (a * xi[0] + b - yi) ** 2
            return total * (1.0 / len(x))
    else:
        layers = []
        for i in range(3):
            W = [[Value(float(v)) for v in row] for row in d[f"W{i}"]]
            bb = [Value(float(v)) for v in d[f"b{i}"]]
            layers.append((W, bb))
        params = [v for W, bb in layers for row in W for v in row] + [v for _, bb in layers for v in bb]

        def loss() -> Any:
            total = Value(0.0)
            for xi, yi in zip(x, y, strict=True):
                h: list[Any] = list(xi)
                for li, (W, bb) in enumerate(layers):
                    h = [
                        sum((w * hv for w, hv in zip(row, h, strict=True)), bv)
                        for row, bv in zip(W, bb, strict=True)
                    ]
                    if li < 2:
                        h = [v.relu() for v in h]
                total = total + (h[0] - yi) ** 2
            return total * (1.0 / len(x))

    def step() -> Any:
        for p in params:
            p.grad = 0.0
        out = loss()
        out.backward()
        for p in params:
            p.data -= LR * p.grad

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    parser.add_argument("--min-time", type=float, default=None)
    args = parser.parse_args()
    min_time = args.min_time or (0.2 if args.quick else 1.0)

    import torch

    torch.set_num_threads(1)
    import fivefold.grad as fg

    print(
        f"numpy {np.__version__}, torch {torch.__version__}, single-threaded BLAS; seconds per training step"
    )
    header = (
        f"{'workload':<8} {'fivefold':>10} {'torch':>10} {'autograd':>10} {'micrograd':>10}"
        f" {'ff/torch':>9} {'autograd/ff':>12} {'micro/ff':>9}"
    )
    print(header)
    for name in ("line", "mlp2", "mnist"):
        d = data(name)
        ff = _time(torchlike_step(fg, name, d), min_time)
        th = _time(torchlike_step(torch, name, d), min_time)
        ag = _time(autograd_step(name, d), min_time)
        mg_step = micrograd_step(name, d)
        mg = _time(mg_step, min_time) if mg_step is not None else float("nan")
        mg_text = f"{mg * 1e6:8.1f}us" if mg == mg else "       n/a"
        ratio_mg = f"{mg / ff:8.1f}x" if mg == mg else "      n/a"
        print(
            f"{name:<8} {ff * 1e6:8.1f}us {th * 1e6:8.1f}us {ag * 1e6:8.1f}us {mg_text} {ff / th:8.2f}x "
            f"{ag / ff:11.1f}x {ratio_mg}"
        )
    print("targets: ff/torch <= 0.6 (line, mlp2), <= 1.2 (mnist); autograd/ff >= 2 everywhere")


if __name__ == "__main__":
    main()
