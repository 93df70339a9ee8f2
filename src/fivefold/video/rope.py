"""3D rotary position embeddings over (time, height, width) token coordinates.

The head dimension is split into three groups of rotating pairs, one per axis. Positions are
integer grid coordinates, so a model trained on one grid runs on larger or differently shaped
ones (the rotation of a relative offset does not depend on the grid size).
"""

from __future__ import annotations

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
    grid: tuple[int, int, int], head_dim: int, theta: float = 10_000.0, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """cos and sin, each (t*h*w, head_dim/2), for tokens in (t, h, w) row-major order."""
    coords = torch.meshgrid(*(torch.arange(n, device=device) for n in grid), indexing="ij")
    parts = []
    for n_pairs, coord in zip(axis_pairs(head_dim), coords, strict=True):
        if n_pairs == 0:
            continue
        freqs = theta ** (-torch.arange(n_pairs, dtype=torch.float32, device=device) / n_pairs)
        parts.append(coord.reshape(-1, 1).float() * freqs[None, :])
    angles = torch.cat(parts, dim=1)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, heads, N, head_dim) by the tables; pairs are (even, odd) channels."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)
    return out.flatten(-2)
