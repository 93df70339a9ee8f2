"""3D rotary position embeddings over (time, height, width) token coordinates.

The head dimension is split into three groups of rotating pairs, one per axis. Positions are
grid coordinates (times a spatial scale after re-patching), so a model trained on one grid runs on
larger or differently shaped ones (the rotation of a relative offset does not depend on the grid size).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """How many rotating pairs each of (t, h, w) gets; space gets the remainder."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    pairs = head_dim // 2
    pt = pairs // 3
    ph = (pairs - pt) // 2
    return pt, ph, pairs - pt - ph


def rope_tables(
    grid: tuple[int, int, int],
    head_dim: int,
    theta: float = 10_000.0,
    device: torch.device | None = None,
    spatial_scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """cos and sin, each (t*h*w, head_dim/2), for tokens in (t, h, w) row-major order.
    ``spatial_scale``: the height and width positions are token index times this (0.5 for a model
    re-patched from 2x2 to 1x1 patches, so a position still means the same place in the picture)."""
    t, h, w = torch.meshgrid(*(torch.arange(n, device=device) for n in grid), indexing="ij")
    coords = (t.float(), h.float() * spatial_scale, w.float() * spatial_scale)
    parts = []
    for n_pairs, coord in zip(axis_pairs(head_dim), coords, strict=True):
        if n_pairs == 0:
            continue
        freqs = theta ** (-torch.arange(n_pairs, dtype=torch.float32, device=device) / n_pairs)
        parts.append(coord.reshape(-1, 1).float() * freqs[None, :])
    angles = torch.cat(parts, dim=1)
    return angles.cos(), angles.sin()


@lru_cache(maxsize=64)
def rope_rotation(
    grid: tuple[int, int, int],
    head_dim: int,
    device: torch.device | None = None,
    spatial_scale: float = 1.0,
) -> Tensor:
    """The tables as unit complex numbers cos + i sin, (t*h*w, head_dim/2), cached per grid.

    A training run or a sampler sees one or a few grids, so each is built once per process;
    treat the result as read-only."""
    cos, sin = rope_tables(grid, head_dim, device=device, spatial_scale=spatial_scale)
    return torch.complex(cos, sin)


def rotate_pairs(x: Tensor, rotation: Tensor) -> Tensor:
    """Rotate the (even, odd) channel pairs of ``x`` (..., head_dim) by ``rotation`` (..., head_dim/2).

    One complex multiply: the same products and sums as rotating the (even, odd) slices by real cos
    and sin tables, without the slices, the four real multiplies and the stack (each a full pass over
    q and k, also in backward)."""
    if x.dtype not in (torch.float32, torch.float64):  # no complex bf16 (autocast on a GPU)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        c, s = rotation.real.to(x.dtype), rotation.imag.to(x.dtype)
        return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2)
