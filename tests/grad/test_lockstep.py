"""Stateful lockstep test: random programs run on torch and on fivefold.grad, compared after each step.

The machine keeps two leaves and a pool of intermediate tensors on each side; rules build
new tensors, run backward (retaining or not), zero or drop grads, update leaves in place
under no_grad, detach, and modify intermediates in place. Every outcome (values, grads,
versions, the exception type and message when one side refuses) must be the same.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.grad.conftest import fg, torch

UNARY = {
    "exp": lambda t: (t * 0.3).exp(),
    "tanh": lambda t: t.tanh(),
    "square": lambda t: t * t,
    "sigmoid": lambda t: t.sigmoid(),
    "relu_shift": lambda t: (t + 0.05).relu(),
    "sum_keep": lambda t: t.sum(-1, keepdim=True) * t,
    "softmax": lambda t: t.softmax(-1),
}
BINARY = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "sub_scaled": lambda a, b: a - 0.5 * b,
    "div": lambda a, b: a / (b * b + 1),
}


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", fn()
    except Exception as exc:  # compared between the two libraries
        return type(exc).__name__, str(exc)


class Lockstep(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        init = [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))]
        self.leaves = {lib: [lib.tensor(a, requires_grad=True) for a in init] for lib in (fg, torch)}
        self.pool: dict[Any, list[Any]] = {fg: [], torch: []}

    def _both(self, fn: Any) -> None:
        a, b = _outcome(lambda: fn(fg)), _outcome(lambda: fn(torch))
        assert a[0] == b[0], (a, b)
        if a[0] != "ok":
            assert a[1] == b[1]

    def _source(self, lib: Any, i: int) -> Any:
        items = self.leaves[lib] + self.pool[lib]
        return items[i % len(items)]

    @rule(name=st.sampled_from(sorted(UNARY)), i=st.integers(0, 20))
    def unary(self, name: str, i: int) -> None:
        def go(lib: Any) -> None:
            self.pool[lib].append(UNARY[name](self._source(lib, i)))

        self._both(go)

    @rule(name=st.sampled_from(sorted(BINARY)), i=st.integers(0, 20), j=st.integers(0, 20))
    def binary(self, name: str, i: int, j: int) -> None:
        def go(lib: Any) -> None:
            self.pool[lib].append(BINARY[name](self._source(lib, i), self._source(lib, j)))

        self._both(go)

    @precondition(lambda self: self.pool[fg])
    @rule(i=st.integers(0, 20), retain=st.booleans())
    def backward(self, i: int, retain: bool) -> None:
        def go(lib: Any) -> None:
            t = self.pool[lib][i % len(self.pool[lib])]
            (t * t).sum().backward(retain_graph=retain)

        self._both(go)

    @rule(set_to_none=st.booleans())
    def zero_grad(self, set_to_none: bool) -> None:
        for lib in (fg, torch):
            for leaf in self.leaves[lib]:
                if set_to_none:
                    leaf.grad = None
                elif leaf.grad is not None:
                    leaf.grad.zero_()

    @rule(k=st.integers(0, 1), lr=st.sampled_from([0.1, -0.05]))
    def update_leaf_no_grad(self, k: int, lr: float) -> None:
        def go(lib: Any) -> None:
            leaf = self.leaves[lib][k]
            with lib.no_grad():
                if leaf.grad is not None:
                    leaf.sub_(leaf.grad * lr)
                else:
                    leaf.mul_(0.9)

        self._both(go)

    @precondition(lambda self: self.pool[fg])
    @rule(i=st.integers(0, 20))
    def inplace_intermediate(self, i: int) -> None:
        def go(lib: Any) -> None:
            t = self.pool[lib][i % len(self.pool[lib])]
            t.mul_(1.5)

        self._both(go)

    @rule(k=st.integers(0, 1))
    def inplace_leaf_refused(self, k: int) -> None:
        self._both(lambda lib: self.leaves[lib][k].add_(1))

    @precondition(lambda self: self.pool[fg])
    @rule(i=st.integers(0, 20))
    def detach(self, i: int) -> None:
        def go(lib: Any) -> None:
            t = self.pool[lib][i % len(self.pool[lib])]
            self.pool[lib].append(t.detach() * 2)

        self._both(go)

    @rule()
    def no_grad_forward(self) -> None:
        def go(lib: Any) -> None:
            with lib.no_grad():
                self.pool[lib].append(self.leaves[lib][0] * self.leaves[lib][1])

        self._both(go)

    @invariant()
    def same_state(self) -> None:
        for a, b in zip(self.leaves[fg], self.leaves[torch], strict=True):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10)
            assert (a.grad is None) == (b.grad is None)
            if a.grad is not None:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)
            assert a._version == b._version
        for a, b in zip(self.pool[fg], self.pool[torch], strict=True):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
            assert a.requires_grad == b.requires_grad
            assert a.is_leaf == b.is_leaf
            assert (a.grad_fn is None) == (b.grad_fn is None)


Lockstep.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
TestLockstep = Lockstep.TestCase
