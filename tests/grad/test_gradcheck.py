"""gradcheck (float64 central differences) for every op in the differential table, and gradgradcheck."""

from __future__ import annotations

import numpy as np
import pytest

from fivefold.grad.gradcheck import GradcheckError
from tests.grad.conftest import fg
from tests.grad.test_ops_diff import OPS, Op

_SHAPES = {"matmul": [(2, 3), (3, 2)]}


def _inputs(op: Op) -> list[fg.Tensor]:
    rng = np.random.default_rng(0)
    shapes = list(op.shapes[0]) if op.shapes else _SHAPES.get(op.name, [(2, 3)] * op.arity)
    arrays = []
    for s in shapes:
        vals = rng.uniform(op.low, op.high, s)
        if op.away_from_int:
            vals = np.round(vals * 4) / 4 + 0.1 + rng.uniform(0, 0.02, s)
        arrays.append(vals)
    return [fg.tensor(a, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("op", OPS, ids=[o.name for o in OPS])
def test_gradcheck(op: Op) -> None:
    if op.name == "prod":  # keep the product well away from 0 so the relative step is meaningful
        op = Op(op.name, op.fn, low=0.8, high=1.2)
    inputs = _inputs(op)
    assert fg.autograd.gradcheck(lambda *xs: op.fn(fg, *xs), inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        "mul",
        "div",
        "tanh",
        "sigmoid",
        "softmax",
        "log_softmax",
        "matmul",
        "exp",
        "logsumexp",
        "var",
        "pow_tt",
        "layer_norm",
        "mse",
        "conv2d",
        "conv2d_groups_stride",
        "max_pool2d",
        "avg_pool2d",
        "linear_bias",
    ],
)
def test_gradgradcheck(name: str) -> None:
    op = next(o for o in OPS if o.name == name)
    assert fg.autograd.gradgradcheck(lambda *xs: op.fn(fg, *xs), _inputs(op), eps=1e-6, atol=1e-4)


def test_gradcheck_catches_a_wrong_formula() -> None:
    from fivefold.grad.functions import unary

    cls = unary.SinBackward0
    original = cls.formula
    cls.formula = staticmethod(lambda g, x, y, ops: g * ops.cos(x) * 1.01)
    try:
        with pytest.raises(GradcheckError, match="Jacobian mismatch"):
            fg.autograd.gradcheck(
                lambda x: x.sin(), [fg.tensor([0.3, 0.5], dtype=fg.float64, requires_grad=True)]
            )
    finally:
        cls.formula = original
