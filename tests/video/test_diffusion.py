"""Samplers against an analytic case: Gaussian data N(mu, s^2) has a closed-form optimal model."""

from __future__ import annotations

import pytest
import torch

from fivefold._common.errors import UsageError
from fivefold.video.diffusion import (
    DiffusionConfig,
    alphas_cumprod,
    guided,
    noise_to,
    sample_ddim,
    sample_rf,
    training_pair,
)

MU, S = 1.5, 0.5


def optimal_velocity(x: torch.Tensor, t1000: torch.Tensor) -> torch.Tensor:
    t = (t1000 / 1000.0).view(-1, 1)
    var = (1 - t) ** 2 * S**2 + t**2
    centred = x - (1 - t) * MU
    e_x0 = MU + (1 - t) * S**2 / var * centred
    e_eps = t / var * centred
    return e_eps - e_x0


def optimal_eps(cfg: DiffusionConfig) -> object:
    ab = alphas_cumprod(cfg).float()

    def fn(x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        a = ab[step.long()].view(-1, 1)
        var = a * S**2 + (1 - a)
        return (1 - a).sqrt() / var * (x - a.sqrt() * MU)

    return fn


@pytest.mark.parametrize(("method", "steps"), [("euler", 200), ("heun", 30)])
def test_rectified_flow_recovers_gaussian(method: str, steps: int) -> None:
    noise = torch.randn(20000, 1, generator=torch.Generator().manual_seed(0))
    x = sample_rf(optimal_velocity, noise, steps, method=method)  # type: ignore[arg-type]
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(S, abs=0.02)


def test_heun_beats_euler_at_few_steps() -> None:
    noise = torch.randn(20000, 1, generator=torch.Generator().manual_seed(1))
    err = {
        m: abs(sample_rf(optimal_velocity, noise, 4, method=m).std().item() - S) for m in ("euler", "heun")
    }
    assert err["heun"] < err["euler"]


def test_ddim_recovers_gaussian() -> None:
    cfg = DiffusionConfig(objective="ddpm")
    noise = torch.randn(20000, 1, generator=torch.Generator().manual_seed(2))
    x = sample_ddim(optimal_eps(cfg), noise, 50, cfg)  # type: ignore[arg-type]
    assert x.mean().item() == pytest.approx(MU, abs=0.03)
    assert x.std().item() == pytest.approx(S, abs=0.03)


def test_training_pairs_and_guidance() -> None:
    x0 = torch.full((4096, 1), MU)
    xt, t, target = training_pair(DiffusionConfig(), x0, torch.Generator().manual_seed(0))
    assert t.min() > 0 and t.max() < 1000
    assert t.median().item() == pytest.approx(500, abs=40)  # logit-normal(0,1) has median 1/2
    torch.testing.assert_close(xt, x0 + (t.view(-1, 1) / 1000) * target)
    xt, t, eps = training_pair(DiffusionConfig(objective="ddpm"), x0, torch.Generator().manual_seed(0))
    assert t.dtype == x0.dtype and eps.std().item() == pytest.approx(1.0, abs=0.05)

    def cond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)

    def uncond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    assert guided(cond, uncond, 4.0)(x0, t).unique().tolist() == [4.0]
    assert guided(cond, None, 4.0) is cond
    with pytest.raises(UsageError, match="strength"):
        noise_to(DiffusionConfig(), x0, x0, 1.5)
    torch.testing.assert_close(noise_to(DiffusionConfig(), x0, torch.zeros_like(x0), 0.0), x0)


def test_time_shift_keeps_the_ends_and_crowds_high_noise() -> None:
    from fivefold.video.diffusion import shifted_times

    plain = shifted_times(1.0, 10, 1.0)
    torch.testing.assert_close(plain, torch.linspace(1.0, 0.0, 11, dtype=torch.float64))
    shifted = shifted_times(1.0, 10, 3.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0
    assert bool((shifted[1:] < shifted[:-1]).all())
    assert (shifted > 0.5).sum() > (plain > 0.5).sum()  # more of the steps at high noise
    assert shifted_times(0.6, 5, 3.0)[0].item() == pytest.approx(0.6)  # SDEdit starts where it says
    # a shifted schedule is still a valid integrator of the exact flow
    noise = torch.randn(20000, 1, generator=torch.Generator().manual_seed(4))
    x = sample_rf(optimal_velocity, noise, 200, shift=3.0)  # type: ignore[arg-type]
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(S, abs=0.02)
    with pytest.raises(UsageError, match="shift must be > 0"):
        shifted_times(1.0, 4, 0.0)


def test_logit_mean_moves_training_towards_high_noise() -> None:
    x0 = torch.zeros(20000, 1)
    times = {}
    for mean in (0.0, 1.5):
        _, t, _ = training_pair(DiffusionConfig(logit_mean=mean), x0, torch.Generator().manual_seed(0))
        times[mean] = t / 1000.0
    assert times[0.0].median().item() == pytest.approx(0.5, abs=0.02)
    assert times[1.5].median().item() == pytest.approx(torch.sigmoid(torch.tensor(1.5)).item(), abs=0.02)
    assert (times[1.5] > 0.9).float().mean() > 4 * (times[0.0] > 0.9).float().mean()
