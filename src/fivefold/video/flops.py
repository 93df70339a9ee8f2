"""Parameters and Gflops of a DiT config, counted analytically as the DiT paper does.

"Gflops" are multiply-accumulates of one forward pass (Peebles & Xie count MACs; DiT-XL/2 on
32x32x4 latents is 118.6). Every linear layer contributes in*out per row it is applied to;
attention adds 2 N^2 D for QK^T and AV (N keys per query: all tokens for full attention, one
frame's tokens or one position's frames for the split variant). Norms, activations and the
softmax are left out, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

from fivefold.video.dit import DiTConfig, count_params
from fivefold.video.patches import check_latent_grid


@dataclass(frozen=True)
class FlopReport:
    config: str
    params: int
    gflops: float
    tokens: int
    latent: tuple[int, int, int]

    def to_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "params": self.params,
            "gflops": round(self.gflops, 2),
            "tokens": self.tokens,
            "latent": list(self.latent),
        }


def forward_macs(cfg: DiTConfig, latent: tuple[int, int, int], text_tokens: int = 24) -> int:
    t, h, w = latent
    gt, gh, gw = check_latent_grid(t, h, w, cfg.patch)
    n = gt * gh * gw
    d = cfg.hidden
    inner = int(d * cfg.mlp_ratio)
    pvol = cfg.patch[0] * cfg.patch[1] * cfg.patch[2]
    macs = n * cfg.in_channels * pvol * d  # patch embedding
    macs += 256 * d + d * d  # timestep MLP
    if cfg.cond == "text":
        macs += cfg.text_dim * d  # pooled prompt
        macs += text_tokens * (cfg.text_dim * d + d * d)  # token MLP
    for i in range(cfg.depth):
        macs += 6 * d * d  # adaLN modulation (once per sample)
        macs += n * (3 * d * d + d * d + 2 * d * inner)  # qkv, proj, MLP
        if cfg.attention == "full":
            keys = n
        else:
            keys = gh * gw if i % 2 == 0 else gt
        macs += 2 * n * keys * d
        if cfg.cond == "text":
            macs += n * 2 * d * d + text_tokens * 2 * d * d + 2 * n * text_tokens * d
    macs += 2 * d * d + n * d * pvol * cfg.out_channels  # final layer
    return macs


def report(name: str, cfg: DiTConfig, latent: tuple[int, int, int] | None = None) -> FlopReport:
    latent = latent or cfg.input_size
    grid = check_latent_grid(*latent, cfg.patch)
    return FlopReport(
        config=name,
        params=count_params(cfg),
        gflops=forward_macs(cfg, latent) / 1e9,
        tokens=grid[0] * grid[1] * grid[2],
        latent=latent,
    )
