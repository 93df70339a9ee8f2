"""Spacetime patches: latents (B,C,T,H,W) <-> tokens (B, t*h*w, C*pt*ph*pw).

An image is a video with T = 1 (use pt = 1), so images and videos share one batch format.
Sizes that do not divide are refused with the nearest valid sizes, in latent or pixel units.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

from fivefold._common.errors import UsageError

Patch = tuple[int, int, int]


def _near(value: int, step: int, offset: int = 0) -> str:
    k = max(1, round((value - offset) / step))
    lo = offset + k * step if offset + k * step <= value else offset + (k - 1) * step
    lo = max(lo, offset + step) if offset == 0 else max(lo, offset)
    hi = lo + step
    options = [v for v in (lo, hi) if v >= max(1, offset)]
    return " or ".join(str(v) for v in dict.fromkeys(options))


def check_latent_grid(t: int, h: int, w: int, patch: Patch) -> tuple[int, int, int]:
    """The token grid for a latent of T x H x W; a :class:`UsageError` if the patch does not divide."""
    pt, ph, pw = patch
    problems = []
    for name, value, p in (("latent frames", t, pt), ("latent height", h, ph), ("latent width", w, pw)):
        if value < p or value % p:
            problems.append(f"{name} {value} is not a multiple of patch {p} (nearest: {_near(value, p)})")
    if problems:
        raise UsageError("; ".join(problems))
    return t // pt, h // ph, w // pw


def check_pixel_size(
    frames: int, height: int, width: int, *, temporal: int, spatial: int, patch: Patch
) -> tuple[int, int, int]:
    """Latent (T, H, W) for a pixel clip, or a :class:`UsageError` naming the nearest valid sizes.

    Valid: frames = 1 + temporal * pt * k (latent frames a multiple of pt, counted after the first
    causal frame when pt = 1), height and width multiples of spatial * ph / spatial * pw.
    """
    pt, ph, pw = patch
    problems = []
    if pt == 1:
        if frames < 1 or (frames - 1) % temporal:
            problems.append(
                f"frames={frames} must be 1 + {temporal}*k (nearest: {_near(frames, temporal, 1)})"
            )
    else:
        # latent frames 1 + (T-1)/temporal must be a multiple of pt
        lt = 1 + (frames - 1) // temporal if frames >= 1 else 0
        if frames < 1 or (frames - 1) % temporal or lt % pt:
            valid = sorted({1 + temporal * (pt * k - 1) for k in range(1, 64)})
            best = sorted(valid, key=lambda v: abs(v - frames))[:2]
            problems.append(
                f"frames={frames} must give a latent length divisible by {pt} "
                f"(nearest: {' or '.join(map(str, sorted(best)))})"
            )
    for name, value, p in (("height", height, spatial * ph), ("width", width, spatial * pw)):
        if value < p or value % p:
            problems.append(f"{name}={value} must be a multiple of {p} (nearest: {_near(value, p)})")
    if problems:
        raise UsageError("; ".join(problems))
    return 1 + (frames - 1) // temporal, height // spatial, width // spatial


def patchify(x: Tensor, patch: Patch) -> tuple[Tensor, tuple[int, int, int]]:
    if x.dim() != 5:
        raise UsageError(f"expected latents shaped (B,C,T,H,W), got {tuple(x.shape)}")
    grid = check_latent_grid(x.shape[2], x.shape[3], x.shape[4], patch)
    pt, ph, pw = patch
    tokens = rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
    return tokens, grid


def unpatchify(tokens: Tensor, grid: tuple[int, int, int], patch: Patch, channels: int) -> Tensor:
    t, h, w = grid
    pt, ph, pw = patch
    return rearrange(
        tokens,
        "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
        t=t,
        h=h,
        w=w,
        pt=pt,
        ph=ph,
        pw=pw,
        c=channels,
    )
