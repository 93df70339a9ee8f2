"""Seamless joins between given frames and generated ones.

Generated frames come out of the VAE's decoder; the given frames next to them are the user's own
pixels. Even a perfect DiT would leave a step at the join: the decoder's error (a slight blur and
tint; ~31 dB PSNR for the shipped VAE). The decoded window also holds the decoder's version of the
given frame at the join, so that error is known exactly there: it is carried into the first
generated frames, fading out over one latent frame, so the join shows only the motion.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fade_weights(frames: int, fade: int) -> Tensor:
    """(frames,) weights 1 - j/fade: the frame at the join gets the whole error (so the step there
    is the decoder's own step between the two frames), none from the ``fade``-th frame on."""
    j = torch.arange(frames, dtype=torch.float32)
    return (1.0 - j / fade).clamp(min=0.0)


def carry_in(generated: Tensor, given: Tensor, decoded: Tensor, fade: int) -> Tensor:
    """``generated`` (B,3,T,H,W) following the given frame ``given`` (B,3,H,W) whose decoder
    rendering is ``decoded``; the error ``given - decoded`` is added to the first generated frames,
    fading out over ``fade``. (Joins before a given frame are made by time reversal, so they use
    this too: see ``capabilities``.)"""
    weights = fade_weights(generated.shape[2], fade)
    residual = (given - decoded)[:, :, None]
    out = generated + residual * weights.view(1, 1, -1, 1, 1)
    return out.clamp(-1.0, 1.0)
