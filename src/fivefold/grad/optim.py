"""Optimizers with torch's exact update rules (single-tensor CPU code path): SGD, Adam, AdamW.

Updates run on the parameters' arrays directly (the equivalent of torch's updates under
``no_grad``), in the same order of floating-point operations as torch, so a training run
matches torch's to float32 round-off. Each update bumps the parameter's version counter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from fivefold.grad.tensor import Tensor

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]


class Optimizer:
    """Parameter groups, per-parameter state and ``zero_grad`` (``set_to_none=True`` by default)."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        for p in group["params"]:
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p._grad = None
                elif p._grad is not None:
                    p._grad._data[...] = 0

    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        return {
            "state": {
                index[id(p)]: {k: (v._data.copy() if isinstance(v, Tensor) else v) for k, v in s.items()}
                for p, s in self.state.items()
            },
            "param_groups": [
                {
                    **{k: v for k, v in g.items() if k != "params"},
                    "params": [index[id(p)] for p in g["params"]],
                }
                for g in self.param_groups
            ],
        }

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (dampening, Nesterov) and weight decay."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
                "maximize": maximize,
            },
        )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        state = self.state
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            x = p._data
            d_p = g._data if not maximize else -g._data
            if wd != 0:
                d_p = d_p + wd * x
            if momentum != 0:
                st = state.get(p)
                if st is None:
                    st = state[p] = {}
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = d_p.copy()
                else:
                    buf *= momentum
                    if dampening == 0:
                        buf += d_p
                    else:
                        buf += (1 - dampening) * d_p
                d_p = d_p + momentum * buf if nesterov else buf
            if lr == 1:
                x -= d_p
            else:
                x += (-lr) * d_p
            p._vc[0] += 1


class Adam(Optimizer):
    """Adam (and AMSGrad); ``decoupled`` switches to AdamW's weight decay."""

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(
            params,
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": amsgrad,
                "maximize": maximize,
            },
        )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
        for p in group["params"]:
            if p._grad is None:
                continue
            x = p._data
            grad = p._grad._data if not maximize else -p._grad._data
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {
                    "step": 0.0,
                    "exp_avg": np.zeros_like(x),
                    "exp_avg_sq": np.zeros_like(x),
                }
                if amsgrad:
                    st["max_exp_avg_sq"] = np.zeros_like(x)
            st["step"] += 1.0
            step = st["step"]
            if wd != 0:
                if self._decoupled:
                    x *= 1 - lr * wd
                else:
                    grad = grad + wd * x
            m, v = st["exp_avg"], st["exp_avg_sq"]
            # exp_avg.lerp_(grad, 1 - beta1): torch's lerp for weight < 0.5 is self + w * (end - self)
            w = 1 - beta1
            if w < 0.5:
                m += w * (grad - m)
            else:
                m[...] = grad - (grad - m) * (1 - w)
            v *= beta2
            v += ((1 - beta2) * grad) * grad
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            bc2_sqrt = math.sqrt(bias_correction2)
            if amsgrad:
                np.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
                denom = np.sqrt(st["max_exp_avg_sq"]) / bc2_sqrt
            else:
                denom = np.sqrt(v) / bc2_sqrt
            denom += eps
            x += ((-step_size) * m) / denom
            p._vc[0] += 1


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2, as torch's)."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
