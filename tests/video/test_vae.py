from __future__ import annotations

import pytest
import torch

from fivefold._common.errors import UsageError
from fivefold.video.vae import VAEConfig, VideoVAE, psnr, ssim

from .conftest import TINY_VAE


@pytest.mark.parametrize(
    ("spatial", "temporal", "t", "h", "w"),
    [(4, 4, 5, 12, 20), (4, 2, 7, 28, 8), (8, 1, 3, 24, 40), (8, 4, 9, 16, 8)],
)
def test_shapes_at_odd_sizes(spatial: int, temporal: int, t: int, h: int, w: int) -> None:
    channels = (8,) * (3 if spatial == 4 else 4)
    vae = VideoVAE(
        VAEConfig(latent_channels=3, spatial_factor=spatial, temporal_factor=temporal, channels=channels)
    )
    x = torch.rand(2, 3, t, h, w) * 2 - 1
    z = vae.encode(x)
    assert z.shape == (2, 3, 1 + (t - 1) // temporal, h // spatial, w // spatial)
    assert vae.decode(z).shape == x.shape


def test_encoder_and_decoder_are_causal() -> None:
    torch.manual_seed(0)
    vae = VideoVAE(TINY_VAE).eval()
    with torch.no_grad():  # the identity-initialised temporal taps would hide leaks: randomise them
        for p in vae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(1, 3, 9, 8, 8)
    y = x.clone()
    y[:, :, 5:] = torch.randn(1, 3, 4, 8, 8)  # change pixel frames 5..8 = latent frame 2 only
    zx, zy = vae.encode(x), vae.encode(y)
    torch.testing.assert_close(zx[:, :, :2], zy[:, :, :2])
    assert not torch.allclose(zx[:, :, 2], zy[:, :, 2])
    z2 = zx.clone()
    z2[:, :, 2] += 1.0
    dx, dz = vae.decode(zx), vae.decode(z2)
    torch.testing.assert_close(dx[:, :, :5], dz[:, :, :5])
    assert not torch.allclose(dx[:, :, 5:], dz[:, :, 5:])


def test_one_frame_video_is_the_image_path() -> None:
    torch.manual_seed(1)
    vae = VideoVAE(TINY_VAE).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    video = torch.rand(2, 3, 9, 16, 12) * 2 - 1
    image = video[:, :, 0]
    zi = vae.encode_image(image)
    torch.testing.assert_close(zi, vae.encode(video)[:, :, 0])
    torch.testing.assert_close(vae.decode_image(zi), vae.decode(zi[:, :, None])[:, :, 0])


def test_bad_sizes_name_nearest_valid() -> None:
    vae = VideoVAE(TINY_VAE)
    with pytest.raises(
        UsageError, match=r"frames=8 must be 1 \+ 4\*k \(nearest: 5 or 9\).*width=30.*28 or 32"
    ):
        vae.encode(torch.zeros(1, 3, 8, 32, 30))
    with pytest.raises(UsageError, match="spatial factor"):
        VAEConfig(spatial_factor=2)


def test_loss_and_metrics() -> None:
    vae = VideoVAE(TINY_VAE)
    x = torch.rand(2, 3, 5, 8, 8) * 2 - 1
    loss, parts = vae.loss(x, torch.Generator().manual_seed(0))
    assert loss.item() > 0 and parts["kl"] >= 0
    assert psnr(x, x) == 99.0
    assert psnr(x, x + 0.02) == pytest.approx(40.0, abs=0.1)  # MSE (0.01)^2 on the [0,1] scale
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-4)
    assert ssim(x, -x) < 0.5
