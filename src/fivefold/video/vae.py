"""A causal 3D-convolution video VAE: T = 1 + s*k frames -> 1 + k latent frames.

Every temporal operation looks only backwards (front padding, first frame kept apart when
time is downsampled), so frame 0 is encoded exactly like an image and latent frame j never
sees pixel frames after the ones it summarises. Convolutions are factorised as a 2D spatial
3x3 followed by a causal temporal 3-tap: ~3x cheaper than full 3x3x3 kernels on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fivefold._common.errors import UsageError


@dataclass(frozen=True)
class VAEConfig:
    latent_channels: int = 8
    spatial_factor: int = 4  # 4 or 8
    temporal_factor: int = 4  # 1, 2 or 4
    channels: tuple[int, ...] = field(default=(16, 32, 64))
    kl_weight: float = 1e-6
    scale: float = 1.0  # latents are divided by this (their std over the data) before diffusion
    shift: float = 0.0

    def __post_init__(self) -> None:
        if self.spatial_factor not in (4, 8):
            raise UsageError(f"VAE spatial factor must be 4 or 8, got {self.spatial_factor}")
        if self.temporal_factor not in (1, 2, 4):
            raise UsageError(f"VAE temporal factor must be 1, 2 or 4, got {self.temporal_factor}")
        if len(self.channels) != self.spatial_downs + 1:
            raise UsageError(
                f"VAE channels needs {self.spatial_downs + 1} entries for spatial factor "
                f"{self.spatial_factor}, got {len(self.channels)}"
            )

    @property
    def spatial_downs(self) -> int:
        return int(math.log2(self.spatial_factor))

    @property
    def temporal_downs(self) -> int:
        return int(math.log2(self.temporal_factor))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        data = dict(data)
        data["channels"] = tuple(data["channels"])
        return cls(**data)

    def latent_frames(self, frames: int) -> int:
        return 1 + (frames - 1) // self.temporal_factor

    def pixel_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_factor


def nearest_valid(value: int, step: int, offset: int = 0) -> tuple[int, int]:
    """The valid sizes ``offset + step*k`` on either side of ``value``."""
    below = offset + max(0, (value - offset) // step) * step
    if below < max(offset, 1):
        below = offset + step if offset == 0 else offset
    above = below + step if below < value else below
    return below, above


def check_video_size(frames: int, height: int, width: int, *, temporal: int, spatial: int) -> None:
    """Raise a :class:`UsageError` naming the nearest valid sizes unless the VAE can take them."""
    problems = []
    if frames < 1 or (frames - 1) % temporal:
        lo, hi = nearest_valid(frames, temporal, 1)
        problems.append(f"frames={frames} must be 1 + {temporal}*k (nearest: {lo} or {hi})")
    for name, value in (("height", height), ("width", width)):
        if value < spatial or value % spatial:
            lo, hi = nearest_valid(value, spatial)
            problems.append(f"{name}={value} must be a multiple of {spatial} (nearest: {lo} or {hi})")
    if problems:
        raise UsageError("; ".join(problems))


class CausalConv(nn.Module):
    """3x3 spatial conv, then a causal k-tap temporal conv (padding only in front)."""

    def __init__(self, cin: int, cout: int, k_t: int = 3) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(cin, cout, 3, padding=1)
        self.k_t = k_t
        self.temporal: nn.Conv3d | None = None
        if k_t > 1:
            conv = nn.Conv3d(cout, cout, (k_t, 1, 1))
            # Start as the identity in time so training begins from a sound per-frame codec.
            _identity_init(conv, cout, lambda w, c: w[c, c, -1])
            self.temporal = conv

    def forward(self, x: Tensor) -> Tensor:
        b, _, t, h, w = x.shape
        y: Tensor = self.spatial(x.transpose(1, 2).reshape(b * t, -1, h, w))
        y = y.reshape(b, t, -1, h, w).transpose(1, 2)
        if self.temporal is None:
            return y
        out: Tensor = self.temporal(F.pad(y, (0, 0, 0, 0, self.k_t - 1, 0)))
        return out


def _identity_init(conv: nn.Conv3d, channels: int, entry: Callable[[Tensor, int], Tensor]) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()
        for c in range(channels):
            entry(conv.weight, c).fill_(1.0)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = CausalConv(cin, cout)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.conv2 = CausalConv(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # GroupNorm statistics per frame: pooling over time would leak future frames into the past.
        h = self.conv1(F.silu(_frame_norm(self.norm1, x)))
        h = self.conv2(F.silu(_frame_norm(self.norm2, h)))
        out: Tensor = self.skip(x) + h
        return out


def _frame_norm(norm: nn.GroupNorm, x: Tensor) -> Tensor:
    b, c, t, h, w = x.shape
    y: Tensor = norm(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, c, h, w).transpose(1, 2)


class SpatialDown(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        y: Tensor = self.conv(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h // 2, w // 2).transpose(1, 2)


class SpatialUp(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        y = F.interpolate(x.transpose(1, 2).reshape(b * t, c, h, w), scale_factor=2.0, mode="nearest")
        out: Tensor = self.conv(y)
        return out.reshape(b, t, c, 2 * h, 2 * w).transpose(1, 2)


class TemporalDown(nn.Module):
    """Frame 0 passes through; frames (2m+1, 2m+2) merge into one (initialised as their mean)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(ch, ch, (2, 1, 1), stride=(2, 1, 1))
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()  # type: ignore[union-attr]
            for c in range(ch):
                self.conv.weight[c, c, :] = 0.5

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] == 1:
            return x
        return torch.cat([x[:, :, :1], self.conv(x[:, :, 1:])], dim=2)


class TemporalUp(nn.Module):
    """Frame 0 passes through; every later frame becomes two (a learned 1x1 mix for each)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(ch, 2 * ch, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()  # type: ignore[union-attr]
            for c in range(ch):
                self.conv.weight[c, c] = 1.0
                self.conv.weight[ch + c, c] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] == 1:
            return x
        b, c, t, h, w = x.shape
        rest = self.conv(x[:, :, 1:]).reshape(b, 2, c, t - 1, h, w)
        # interleave: (pair element, time) -> time*2 + pair element
        rest = rest.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * (t - 1), h, w)
        return torch.cat([x[:, :, :1], rest], dim=2)


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        ch = cfg.channels
        self.conv_in = CausalConv(3, ch[0])
        layers: list[nn.Module] = []
        # Downsample first, then think: the costly blocks run at the lower resolutions.
        for i in range(cfg.spatial_downs):
            layers.append(SpatialDown(ch[i]))
            if i < cfg.temporal_downs:
                layers.append(TemporalDown(ch[i]))
            layers.append(ResBlock(ch[i], ch[i + 1]))
        self.down = nn.Sequential(*layers)
        self.mid = ResBlock(ch[-1], ch[-1])
        self.norm_out = nn.GroupNorm(min(8, ch[-1]), ch[-1])
        self.conv_out = CausalConv(ch[-1], 2 * cfg.latent_channels, k_t=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        out: Tensor = self.conv_out(F.silu(_frame_norm(self.norm_out, h)))
        return out


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        ch = cfg.channels[::-1]
        self.conv_in = CausalConv(cfg.latent_channels, ch[0])
        self.mid = ResBlock(ch[0], ch[0])
        layers: list[nn.Module] = []
        n = cfg.spatial_downs
        for i in range(n):
            # mirror of the encoder: the deepest temporal merge is undone first
            layers.append(ResBlock(ch[i], ch[i + 1]))
            if n - 1 - i < cfg.temporal_downs:
                layers.append(TemporalUp(ch[i + 1]))
            layers.append(SpatialUp(ch[i + 1]))
        self.up = nn.Sequential(*layers)
        self.norm_out = nn.GroupNorm(min(8, ch[-1]), ch[-1])
        self.conv_out = CausalConv(ch[-1], 3, k_t=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        out: Tensor = self.conv_out(F.silu(_frame_norm(self.norm_out, h)))
        return out


class VideoVAE(nn.Module):
    """Videos (B,3,T,H,W) in [-1,1] <-> latents (B,C,1+(T-1)/s_t,H/s,W/s)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def check(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != 3:
            raise UsageError(f"VAE expects videos shaped (B,3,T,H,W), got {tuple(x.shape)}")
        check_video_size(
            x.shape[2],
            x.shape[3],
            x.shape[4],
            temporal=self.cfg.temporal_factor,
            spatial=self.cfg.spatial_factor,
        )

    def encode_dist(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.check(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Scaled latents, ready for diffusion (the posterior mean unless ``sample``)."""
        mean, logvar = self.encode_dist(x)
        z = mean
        if sample:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            z = mean + torch.exp(0.5 * logvar) * noise
        return (z - self.cfg.shift) / self.cfg.scale

    def decode(self, z: Tensor) -> Tensor:
        out: Tensor = self.decoder(z * self.cfg.scale + self.cfg.shift)
        return out

    def encode_image(self, image: Tensor) -> Tensor:
        """(B,3,H,W) -> (B,C,H/s,W/s): the same network, on a one-frame video."""
        return self.encode(image[:, :, None])[:, :, 0]

    def decode_image(self, z: Tensor) -> Tensor:
        return self.decode(z[:, :, None])[:, :, 0]

    def loss(
        self, x: Tensor, generator: torch.Generator | None = None, edge_weight: float = 0.0
    ) -> tuple[Tensor, dict[str, float]]:
        mean, logvar = self.encode_dist(x)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        z = mean + torch.exp(0.5 * logvar) * noise
        recon = self.decoder(z)
        # L1 keeps edges sharper than MSE on flat-coloured shapes; MSE term tracks PSNR directly.
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        if edge_weight:
            rec = rec + edge_weight * edge_loss(recon, x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        total = rec + self.cfg.kl_weight * kl
        return total, {"rec": float(rec.detach()), "kl": float(kl.detach())}


def edge_loss(recon: Tensor, target: Tensor) -> Tensor:
    """L1 between spatial finite differences (a gradient-difference loss): pixel losses alone let
    the corners of small squares and triangles round off, which is what turns them into circles."""
    dh = F.l1_loss(recon[..., 1:, :] - recon[..., :-1, :], target[..., 1:, :] - target[..., :-1, :])
    dw = F.l1_loss(recon[..., 1:] - recon[..., :-1], target[..., 1:] - target[..., :-1])
    return dh + dw


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB for videos in [-1,1], measured on the [0,1] scale."""
    mse = float(((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).mean())
    return 99.0 if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def ssim(a: Tensor, b: Tensor) -> float:
    """Mean SSIM (Gaussian window 7, sigma 1.5) over frames and channels, on the [0,1] scale."""
    x = ((a.clamp(-1, 1) + 1) / 2).transpose(1, 2).flatten(0, 1)  # (B*T,3,H,W)
    y = ((b.clamp(-1, 1) + 1) / 2).transpose(1, 2).flatten(0, 1)
    coords = torch.arange(7, dtype=x.dtype) - 3
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).expand(3, 1, 7, 7).contiguous()

    def blur(v: Tensor) -> Tensor:
        return F.conv2d(v, win, padding=3, groups=3)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())
