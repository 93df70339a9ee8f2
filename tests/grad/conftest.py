"""Shared helpers: run the same snippet on torch (the oracle) and on fivefold.grad."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

torch = pytest.importorskip("torch", reason="torch is the test oracle (installed by the dev/video extras)")
torch.set_num_threads(1)

import fivefold.grad as fg  # noqa: E402

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-9, atol=1e-11)}


def to_np(t: Any) -> np.ndarray:
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return t.detach().numpy()


def assert_close(ff: Any, th: Any, dtype: Any = np.float32, scale: float = 1.0) -> None:
    a, b = to_np(ff), to_np(th)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(a, b, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)


def pair(arr: np.ndarray, requires_grad: bool = True) -> tuple[Any, Any]:
    """The same array as a fivefold tensor and a torch tensor (both leaves)."""
    return (
        fg.tensor(arr.copy(), requires_grad=requires_grad),
        torch.tensor(arr.copy(), requires_grad=requires_grad),
    )


@pytest.fixture
def libs() -> tuple[Any, Any]:
    return fg, torch
