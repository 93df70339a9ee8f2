"""Diffusion objectives and samplers, independent of the network.

Rectified flow (default): x_t = (1 - t) x0 + t eps, t in [0, 1] (1 is pure noise); the model
predicts the velocity eps - x0; training draws t from a logit-normal; Euler or Heun sampling.
DDPM: a linear-beta schedule over 1000 steps, epsilon prediction, deterministic DDIM sampling.
Classifier-free guidance combines a conditional and an unconditional prediction over all
channels. A model is a function ``(x, t) -> prediction`` where ``t`` is in [0, 1000].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from fivefold._common.errors import UsageError

ModelFn = Callable[[Tensor, Tensor], Tensor]
Objective = Literal["rf", "ddpm"]


@dataclass(frozen=True)
class DiffusionConfig:
    objective: Objective = "rf"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    num_train_steps: int = 1000  # DDPM only
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.objective not in ("rf", "ddpm"):
            raise UsageError(f"objective must be 'rf' or 'ddpm', got {self.objective!r}")


def alphas_cumprod(cfg: DiffusionConfig) -> Tensor:
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def training_pair(
    cfg: DiffusionConfig, x0: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """(x_t, model time in [0, 1000], target) for a batch of clean latents."""
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    shape = (b,) + (1,) * (x0.dim() - 1)
    if cfg.objective == "rf":
        u = torch.randn(b, generator=generator) * cfg.logit_std + cfg.logit_mean
        t = torch.sigmoid(u).to(x0.dtype)
        tb = t.view(shape)
        return (1 - tb) * x0 + tb * noise, t * 1000.0, noise - x0
    steps = torch.randint(0, cfg.num_train_steps, (b,), generator=generator)
    ab = alphas_cumprod(cfg)[steps].to(x0.dtype).view(shape)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise, steps.to(x0.dtype), noise


def guided(cond: ModelFn, uncond: ModelFn | None, scale: float) -> ModelFn:
    """Classifier-free guidance: u + s (c - u); scale 1 (or no unconditional model) is plain c."""
    if uncond is None or scale == 1.0:
        return cond

    def fn(x: Tensor, t: Tensor) -> Tensor:
        c, u = cond(x, t), uncond(x, t)
        return u + scale * (c - u)

    return fn


def shifted_times(t_start: float, steps: int, shift: float = 1.0) -> Tensor:
    """``steps + 1`` times from ``t_start`` down to 0, evenly spaced after the warp
    t = s u / (1 + (s - 1) u), which keeps both ends and crowds the steps towards t = 1 for s > 1."""
    if shift <= 0:
        raise UsageError(f"shift must be > 0, got {shift}")
    u_start = t_start / (shift - (shift - 1.0) * t_start)
    u = torch.linspace(u_start, 0.0, steps + 1, dtype=torch.float64)
    return shift * u / (1.0 + (shift - 1.0) * u)


@torch.no_grad()
def sample_rf(
    model: ModelFn,
    noise: Tensor,
    steps: int,
    *,
    method: Literal["euler", "heun"] = "euler",
    t_start: float = 1.0,
    shift: float = 1.0,
) -> Tensor:
    """Integrate dx/dt = v from t_start (noise, or a partly noised input for SDEdit) to 0.

    ``shift`` > 1 spends more of the steps at high noise (SD3's time shift)."""
    if steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    ts = shifted_times(t_start, steps, shift)
    x = noise
    b = x.shape[0]
    for i in range(steps):
        t, t_next = float(ts[i]), float(ts[i + 1])
        dt = t_next - t
        v = model(x, torch.full((b,), t * 1000.0, dtype=x.dtype))
        if method == "heun" and t_next > 0:
            x_pred = x + dt * v
            v2 = model(x_pred, torch.full((b,), t_next * 1000.0, dtype=x.dtype))
            x = x + dt * 0.5 * (v + v2)
        else:
            x = x + dt * v
    return x


@torch.no_grad()
def sample_ddim(
    model: ModelFn, noise: Tensor, steps: int, cfg: DiffusionConfig, *, t_start: float = 1.0
) -> Tensor:
    """Deterministic DDIM (eta = 0) over ``steps`` evenly spaced training timesteps."""
    if steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    ab = alphas_cumprod(cfg)
    top = max(0, min(cfg.num_train_steps - 1, round(t_start * (cfg.num_train_steps - 1))))
    timesteps = torch.linspace(top, 0, steps).round().long().tolist()
    x = noise
    b = x.shape[0]
    for i, step in enumerate(timesteps):
        a_t = float(ab[step])
        a_prev = float(ab[timesteps[i + 1]]) if i + 1 < len(timesteps) else 1.0
        eps = model(x, torch.full((b,), float(step), dtype=x.dtype))
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    return x


def noise_to(cfg: DiffusionConfig, x0: Tensor, noise: Tensor, strength: float) -> Tensor:
    """x0 noised to ``strength`` in [0, 1] (1: pure noise), for SDEdit-style starts."""
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"strength must be in [0, 1], got {strength}")
    if cfg.objective == "rf":
        return (1 - strength) * x0 + strength * noise
    step = max(0, min(cfg.num_train_steps - 1, round(strength * (cfg.num_train_steps - 1))))
    a = float(alphas_cumprod(cfg)[step])
    out: Tensor = x0 * a**0.5 + noise * (1 - a) ** 0.5
    return out


def sample(
    cfg: DiffusionConfig,
    model: ModelFn,
    noise: Tensor,
    steps: int,
    *,
    method: Literal["euler", "heun"] = "euler",
    t_start: float = 1.0,
    shift: float = 1.0,
) -> Tensor:
    if cfg.objective == "rf":
        return sample_rf(model, noise, steps, method=method, t_start=t_start, shift=shift)
    return sample_ddim(model, noise, steps, cfg, t_start=t_start)
