"""`fivefold demo` for grad: fit y = a*x + b, train an MLP on the bundled digits, plot the losses."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

import fivefold.grad as fg
from fivefold._common.files import atomic_path


def load_digits() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """scikit-learn's 8x8 digits (1797 images), shipped inside the package as a compressed .npz."""
    with resources.files("fivefold.grad").joinpath("data/digits.npz").open("rb") as fh:
        data = np.load(fh)
        return data["images"].astype(np.float32) / 16.0, data["target"].astype(np.int64)


def fit_line(steps: int = 200, lr: float = 0.01, *, lib: Any = fg) -> tuple[float, float, list[float]]:
    """Gradient descent on MSE for y = 3x + 1 sampled on [0, 10] (``lib`` may be torch: same code)."""
    x = lib.linspace(0, 10, 20).reshape(-1, 1)
    y = 3 * x + 1
    a = lib.zeros(1, requires_grad=True)
    b = lib.zeros(1, requires_grad=True)
    opt = lib.optim.SGD([a, b], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((a * x + b - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return a.item(), b.item(), losses


def train_digits(epochs: int = 25, seed: int = 0) -> tuple[float, list[float]]:
    """A 64-128-10 MLP with Adam; returns test accuracy and the per-epoch training loss."""
    images, labels = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    split = int(0.8 * len(images))
    train, test = order[:split], order[split:]
    fg.manual_seed(seed)
    model = fg.nn.Sequential(fg.nn.Linear(64, 128), fg.nn.ReLU(), fg.nn.Linear(128, 10))
    opt = fg.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = fg.nn.CrossEntropyLoss()
    x_all, y_all = fg.tensor(images), fg.tensor(labels)
    history = []
    for _ in range(epochs):
        total, batches = 0.0, 0
        for start in range(0, len(train), 64):
            idx = fg.tensor(rng.permutation(train)[:64] if start == 0 else train[start : start + 64])
            opt.zero_grad()
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        history.append(total / batches)
        rng.shuffle(train)
    model.eval()
    with fg.no_grad():
        pred = model(x_all[fg.tensor(test)]).argmax(1)
    accuracy = float((pred == y_all[fg.tensor(test)]).float().mean().item())
    return accuracy, history


def plot_losses(series: dict[str, list[float]], path: Path, size: tuple[int, int] = (640, 400)) -> Path:
    """A log-scale line plot drawn with Pillow (no plotting library needed), written atomically."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 60, 20, 30, 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    logs = {k: np.log10(np.maximum(np.asarray(v, float), 1e-12)) for k, v in series.items()}
    lo = min(float(v.min()) for v in logs.values())
    hi = max(float(v.max()) for v in logs.values())
    hi = hi if hi > lo else lo + 1
    for decade in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):
        y = h - bottom - (decade - lo) / (hi - lo) * (h - top - bottom)
        if top <= y <= h - bottom:
            draw.line([left - 4, y, left, y], fill="black")
            draw.text((5, y - 6), f"1e{decade}", fill="black")
    for i, (name, values) in enumerate(logs.items()):
        n = max(len(values) - 1, 1)
        pts = [
            (left + j / n * (w - left - right), h - bottom - (v - lo) / (hi - lo) * (h - top - bottom))
            for j, v in enumerate(values)
        ]
        draw.line(pts, fill=colours[i % len(colours)], width=2)
        draw.text(
            (left + 10, top + 5 + 14 * i),
            f"{name} (final {10 ** values[-1]:.3g})",
            fill=colours[i % len(colours)],
        )
    draw.text((left, h - bottom + 10), "progress (steps / epochs, normalised)", fill="black")
    draw.text((left, 8), "fivefold.grad: training loss (log scale)", fill="black")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def _single_threaded_blas() -> Any:
    """Tiny matmuls run slower with BLAS threads (hand-off costs more than the work)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def demo(out_dir: Path) -> dict[str, str]:
    from fivefold.grad.viz import render, to_dot

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _single_threaded_blas():
        a, b, line_losses = fit_line()
        accuracy, digit_losses = train_digits()
    plot = plot_losses(
        {"line fit y=3x+1 (SGD lr=0.01)": line_losses, "digits MLP (Adam)": digit_losses},
        out_dir / "loss.png",
    )
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    graph = render(to_dot(((x * x).sum() + x.exp().mean()), {"x": x}), out_dir / "graph.dot")
    return {
        "line fit": f"a={a:.3f} b={b:.3f} (true 3, 1), final loss {line_losses[-1]:.2e}",
        "digits MLP test accuracy": f"{accuracy:.1%} (64-128-10, {len(digit_losses)} epochs)",
        "loss plot": str(plot),
        "graph (dot)": str(graph),
        "time": f"{time.perf_counter() - started:.1f} s",
    }
