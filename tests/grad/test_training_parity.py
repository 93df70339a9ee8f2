"""Training parity: the same MLP, initial weights and batches; 100 steps of SGD-momentum and of Adam."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.grad.conftest import fg, torch


def _mlp(lib: Any, weights: list[np.ndarray]) -> Any:
    model = lib.nn.Sequential(
        lib.nn.Linear(8, 32), lib.nn.Tanh(), lib.nn.Linear(32, 16), lib.nn.ReLU(), lib.nn.Linear(16, 3)
    )
    with lib.no_grad():
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(lib.tensor(w))
    return model


def _train(lib: Any, make_opt: Any, steps: int = 100) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(32, 8), (32,), (16, 32), (16,), (3, 16), (3,)]
    weights = [(rng.standard_normal(s) * 0.3).astype(np.float32) for s in shapes]
    model = _mlp(lib, weights)
    opt = make_opt(lib, model.parameters())
    loss_fn = lib.nn.CrossEntropyLoss()
    for step in range(steps):
        batch = np.random.default_rng(step)
        x = lib.tensor(batch.standard_normal((16, 8)).astype(np.float32))
        y = lib.tensor(batch.integers(0, 3, 16))
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


OPTIMIZERS = {
    "sgd_momentum": lambda L, ps: L.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd_nesterov_wd": lambda L, ps: L.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda L, ps: L.optim.Adam(ps, lr=1e-2),
    "adamw": lambda L, ps: L.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameters_match_torch_after_100_steps(name: str) -> None:
    ours = _train(fg, OPTIMIZERS[name])
    theirs = _train(torch, OPTIMIZERS[name])
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype == np.float32
        # float32 round-off (observed max |diff| ~3e-7), compounded over 100 steps
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_optimizer_state_and_zero_grad_semantics() -> None:
    for L in (fg, torch):
        w = L.tensor([1.0, -2.0], requires_grad=True)
        opt = L.optim.SGD([w], lr=0.1, momentum=0.5)
        (w * w).sum().backward()
        opt.step()
        opt.zero_grad()
        assert w.grad is None
        (w * w).sum().backward()
        opt.zero_grad(set_to_none=False)
        assert w.grad.tolist() == [0.0, 0.0]
        assert w.is_leaf and w._version == 1
