from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fivefold._common.errors import UsageError
from fivefold.video.dit import PAPER_NAMES, DiT, count_params, paper_config
from fivefold.video.flops import forward_macs, report
from fivefold.video.patches import check_pixel_size, patchify, unpatchify
from fivefold.video.rope import rope_tables, rotate_pairs

from .conftest import TINY_DIT

# facebookresearch/DiT models.py, class-conditional (1000 classes + null), learned sigma,
# 32x32x4 latents, frozen sin-cos pos_embed counted as in its train.py. XL/2 is the widely
# quoted 675,129,632; the others follow from the same layer list.
PAPER_PARAMS = {
    "DiT-S/2": 32_963_360,
    "DiT-S/4": 32_945_024,
    "DiT-S/8": 33_148_160,
    "DiT-B/2": 130_512_416,
    "DiT-B/4": 130_475_648,
    "DiT-B/8": 130_881_536,
    "DiT-L/2": 458_102_816,
    "DiT-L/4": 458_053_760,
    "DiT-L/8": 458_594_816,
    "DiT-XL/2": 675_129_632,
    "DiT-XL/4": 675_074_432,
    "DiT-XL/8": 675_683_072,
}


def reference_count(depth: int, d: int, p: int) -> int:
    """The DiT layer list written out: patch conv, t-MLP, label table, pos_embed, blocks, final."""
    block = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + (d * 6 * d + 6 * d)
    final = (d * p * p * 8 + p * p * 8) + (d * 2 * d + 2 * d)
    return (
        (4 * p * p * d + d)
        + (256 * d + d + d * d + d)
        + 1001 * d
        + (32 // p) ** 2 * d
        + depth * block
        + final
    )


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_paper_parameter_counts(name: str) -> None:
    size, patch = name.removeprefix("DiT-").split("/")
    depth, d = {"S": (12, 384), "B": (12, 768), "L": (24, 1024), "XL": (28, 1152)}[size]
    assert count_params(paper_config(name)) == PAPER_PARAMS[name] == reference_count(depth, d, int(patch))


def test_paper_gflops() -> None:
    assert round(report("DiT-XL/2", paper_config("DiT-XL/2")).gflops, 1) == 118.6
    assert round(report("DiT-S/2", paper_config("DiT-S/2")).gflops, 2) == 6.06
    assert round(report("DiT-B/4", paper_config("DiT-B/4")).gflops, 1) == 5.6


def test_analytic_macs_match_torch_flop_counter() -> None:
    cfg = dataclasses.replace(TINY_DIT, hidden=64, heads=4, depth=2)
    model = DiT(cfg)
    x = torch.randn(1, 4, 3, 8, 8)
    tokens = torch.randn(1, 24, 384)
    with FlopCounterMode(display=False) as counter:
        model(x, torch.tensor([500.0]), tokens)
    counted = counter.get_total_flops() / 2
    # torch's counter has no formula for the CPU flash-attention kernel: add QK^T and AV by hand
    n, d, layers = 48, 64, 2
    attention = layers * (2 * n * n * d + 2 * n * 24 * d)
    assert counted + attention == pytest.approx(forward_macs(cfg, (3, 8, 8), text_tokens=24), rel=0.01)


@pytest.mark.parametrize("attention", ["full", "split"])
def test_forward_shapes_known_frames_and_other_sizes(attention: str) -> None:
    torch.manual_seed(0)
    model = DiT(dataclasses.replace(TINY_DIT, attention=attention))  # type: ignore[arg-type]
    for t, h, w in [(3, 4, 6), (1, 6, 2), (5, 2, 8)]:  # RoPE: any grid, images included
        x = torch.randn(2, 4, t, h, w)
        out = model(
            x,
            torch.tensor([10.0, 900.0]),
            torch.randn(2, 7, 384),
            y_mask=torch.ones(2, 7, dtype=torch.bool),
            known=torch.randn_like(x),
            known_mask=torch.zeros(2, t, dtype=torch.bool),
        )
        assert out.shape == x.shape


def test_adaln_zero_starts_at_zero_and_class_path() -> None:
    model = DiT(dataclasses.replace(paper_config("DiT-S/8"), depth=1))
    out = model(torch.randn(2, 4, 1, 32, 32), torch.tensor([1.0, 2.0]), torch.tensor([3, 1000]))
    assert out.shape == (2, 8, 1, 32, 32)
    assert torch.count_nonzero(out) == 0
    with pytest.raises(UsageError, match="sincos DiT is fixed"):
        model(torch.randn(1, 4, 1, 16, 16), torch.tensor([1.0]), torch.tensor([3]))


def test_patchify_roundtrip_and_errors() -> None:
    x = torch.randn(2, 5, 4, 6, 10)
    tokens, grid = patchify(x, (2, 3, 5))
    assert tokens.shape == (2, 2 * 2 * 2, 5 * 30) and grid == (2, 2, 2)
    torch.testing.assert_close(unpatchify(tokens, grid, (2, 3, 5), 5), x)
    with pytest.raises(UsageError, match=r"latent height 7 is not a multiple of patch 2 \(nearest: 6 or 8\)"):
        patchify(torch.randn(1, 4, 1, 7, 8), (1, 2, 2))
    assert check_pixel_size(9, 32, 48, temporal=4, spatial=4, patch=(1, 2, 2)) == (3, 8, 12)
    with pytest.raises(
        UsageError, match=r"frames=10 must be 1 \+ 4\*k \(nearest: 9 or 13\).*height=36.*32 or 40"
    ):
        check_pixel_size(10, 36, 32, temporal=4, spatial=4, patch=(1, 2, 2))
    with pytest.raises(UsageError, match=r"latent length divisible by 2 \(nearest: 5 or 13\)"):
        check_pixel_size(9, 32, 32, temporal=4, spatial=4, patch=(2, 2, 2))


def test_rope_is_relative() -> None:
    cos, sin = rope_tables((3, 4, 5), 24)
    assert cos.shape == (60, 12)
    q = torch.randn(1, 1, 1, 24).expand(1, 1, 60, 24)
    k = torch.randn(1, 1, 1, 24).expand(1, 1, 60, 24)
    rotation = torch.complex(cos, sin)
    qr, kr = rotate_pairs(q, rotation), rotate_pairs(k, rotation)
    scores = (qr @ kr.transpose(-1, -2))[0, 0]
    # token (t,h,w) index = t*20 + h*5 + w: equal offsets give equal scores
    assert scores[0, 26].item() == pytest.approx(scores[5, 31].item(), abs=1e-4)
    torch.testing.assert_close((qr * qr).sum(-1), (q * q).sum(-1))


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = DiT(TINY_DIT)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = DiT(dataclasses.replace(TINY_DIT, grad_checkpoint=True))
    ckpt.load_state_dict(plain.state_dict())
    x, tokens = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 5, 384)
    for model in (plain, ckpt):
        model.train()
        model(x, torch.tensor([3.0, 700.0]), tokens).square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
