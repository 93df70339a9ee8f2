"""The gradient-difference term of the VAE loss: it must see what pixel losses forgive (rounded corners)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fivefold.video.vae import VAEConfig, VideoVAE, edge_loss


def _square(size: int = 16) -> torch.Tensor:
    video = -torch.ones(1, 3, 1, size, size)
    video[..., 4:12, 4:12] = 1.0
    return video


def _blur(video: torch.Tensor) -> torch.Tensor:
    frames = F.pad(video[:, :, 0], (1, 1, 1, 1), mode="replicate")
    return F.avg_pool2d(frames, 3, stride=1)[:, :, None]


def test_edge_loss_is_zero_for_identical_and_grows_with_blur() -> None:
    sharp = _square()
    assert float(edge_loss(sharp, sharp)) == 0.0
    assert float(edge_loss(sharp + 0.5, sharp)) == 0.0  # a flat offset has no edges
    blurred = _blur(sharp)
    assert 0 < float(edge_loss(blurred, sharp)) < float(edge_loss(_blur(blurred), sharp))


def test_edge_weight_adds_to_the_vae_loss() -> None:
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(latent_channels=4, channels=(8, 8, 8)))
    x = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    plain, _ = vae.loss(x, generator=torch.Generator().manual_seed(1))
    edged, _ = vae.loss(x, generator=torch.Generator().manual_seed(1), edge_weight=1.0)
    assert edged.item() > plain.item()
