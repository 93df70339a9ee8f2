"""The decoder's error at a join is carried into the generated frames next to it, fading out."""

from __future__ import annotations

import torch

from fivefold.video.seams import carry_in, fade_weights


def test_fade_weights() -> None:
    assert torch.allclose(fade_weights(6, 4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0, 0.0]))


def test_carry_in_removes_the_step_at_the_join_only_near_it() -> None:
    torch.manual_seed(0)
    given = torch.rand(2, 3, 8, 8) * 0.5
    decoded = given + 0.1  # the decoder's tint at the given frame
    generated = decoded[:, :, None].repeat(1, 1, 6, 1, 1) + 0.01 * torch.randn(2, 3, 6, 8, 8)
    joined = carry_in(generated, given, decoded, fade=4)
    before = (generated[:, :, 0] - given).abs().mean()
    after = (joined[:, :, 0] - given).abs().mean()
    assert after < 0.15 * before
    assert torch.equal(joined[:, :, 4:], generated[:, :, 4:].clamp(-1, 1))  # beyond the fade: untouched


def test_carry_in_stays_in_range() -> None:
    generated = torch.full((1, 3, 3, 4, 4), 0.95)
    joined = carry_in(generated, torch.ones(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5), fade=2)
    assert joined.max() <= 1.0 and joined.min() >= -1.0
