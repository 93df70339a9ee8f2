"""Sampling: the pipeline (VAE + DiT + text encoder) and ``generate``.

``generate`` covers text-to-video and, through the known-frames channels the DiT was trained
with, image-to-video, extension and interpolation; ``init_video`` + ``strength`` does SDEdit.
Each prompt's noise comes from its own generator seeded with ``seed + i``, so a sample does not
depend on what else is in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from fivefold._common.errors import FivefoldError, UsageError
from fivefold.video.diffusion import DiffusionConfig, noise_to
from fivefold.video.diffusion import sample as run_sampler
from fivefold.video.dit import DiT, DiTConfig
from fivefold.video.patches import check_pixel_size
from fivefold.video.text import TextEncoder
from fivefold.video.trainloop import load_checkpoint
from fivefold.video.vae import VAEConfig, VideoVAE

ASSETS = Path(__file__).resolve().parent / "assets"
SHIPPED_MODEL = ASSETS / "video_model.pt"
SHIPPED_TEXT_CACHE = ASSETS / "text_cache.pt"


@dataclass
class Pipeline:
    vae: VideoVAE
    dit: DiT
    text: TextEncoder
    diffusion: DiffusionConfig
    config: dict[str, Any] = field(default_factory=dict)  # training size, null prompt, provenance

    @property
    def null_prompt(self) -> str:
        return str(self.config.get("null_prompt", ""))

    @property
    def sample_shift(self) -> float:
        return float(self.config.get("sample_shift", 1.0))

    @property
    def factorized(self) -> bool:
        return bool(self.config.get("factorized", False))

    @torch.no_grad()
    def encode_video(self, video: Tensor) -> Tensor:
        """(B,3,T,H,W) in [-1,1] -> scaled latents (B,C,1+(T-1)/s_t,H/s,W/s)."""
        return self.vae.encode(video)

    @torch.no_grad()
    def decode_latents(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents).clamp(-1.0, 1.0)

    def latent_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        v = self.vae.cfg
        return check_pixel_size(
            frames,
            height,
            width,
            temporal=v.temporal_factor,
            spatial=v.spatial_factor,
            patch=self.dit.cfg.patch,
        )

    def latent_known(self, known_frames: Tensor) -> Tensor:
        """(B,T) pixel-frame mask -> (B,T') latent mask: a latent frame is known when every pixel
        frame it summarises is (frame 0 alone, then groups of ``temporal_factor``)."""
        s = self.vae.cfg.temporal_factor
        first = known_frames[:, :1]
        rest = known_frames[:, 1:]
        if rest.shape[1] == 0:
            return first
        groups = rest.reshape(rest.shape[0], -1, s).all(dim=2)
        return torch.cat([first, groups], dim=1)


def load_pipeline(path: Path | None = None) -> Pipeline:
    """The shipped checkpoint (``path=None``), a packed pipeline or a ``train`` checkpoint (EMA weights)."""
    path = SHIPPED_MODEL if path is None else Path(path)
    if not path.is_file():
        raise FivefoldError(
            f"model checkpoint {path} not found"
            + (" (the package was installed without its assets)" if path == SHIPPED_MODEL else "")
        )
    state = load_checkpoint(path)
    kind = state["kind"]
    if kind == "pipeline":
        dit_state, vae_blob, extra = state["dit"], state["vae"], state.get("meta", {})
    elif kind == "dit":
        if state.get("vae") is None:
            raise UsageError(f"{path} has no VAE inside; train with --vae to make it sampleable")
        dit_state, vae_blob, extra = state["ema"], state["vae"], {}
    else:
        raise UsageError(
            f"{path} is a {kind} checkpoint; sampling needs a DiT ('train') or pipeline checkpoint"
        )
    vae = VideoVAE(VAEConfig.from_dict(vae_blob["config"]))
    vae.load_state_dict(vae_blob["model"])
    dit = DiT(DiTConfig.from_dict(state["config"]))
    try:
        dit.load_state_dict({k: v.float() for k, v in dit_state.items()})
    except RuntimeError as exc:
        raise UsageError(f"{path}: weights do not fit the config stored with them: {exc}") from None
    text = TextEncoder(SHIPPED_TEXT_CACHE if path == SHIPPED_MODEL else None)
    if kind == "pipeline" and "text_cache" in state:
        text.cache.update(state["text_cache"])
    config = {"null_prompt": state.get("null_prompt", ""), **extra}
    return Pipeline(vae.eval(), dit.eval(), text, DiffusionConfig(**state["diffusion"]), config)


def _noise(shape: tuple[int, ...], seed: int, count: int) -> Tensor:
    out = []
    for i in range(count):
        g = torch.Generator().manual_seed(seed + i)
        out.append(torch.randn(shape, generator=g))
    return torch.stack(out)


@torch.no_grad()
def generate(
    pipe: Pipeline,
    prompts: list[str],
    frames: int,
    height: int,
    width: int,
    steps: int = 25,
    cfg: float = 4.0,
    seed: int = 0,
    known_video: Tensor | None = None,
    known_frames: Tensor | None = None,
    init_video: Tensor | None = None,
    strength: float = 1.0,
    method: Literal["euler", "heun"] = "euler",
    shift: float | None = None,
    factorized: bool | None = None,
) -> Tensor:
    """Videos (B,3,T,H,W) in [-1,1] for ``prompts``; see the module docstring for the options.
    ``shift``: rectified flow's time shift. ``factorized``: text-to-video in two stages, first the
    image (frame 0), then the clip with that frame known (as Emu Video does), so the motion is
    drawn for a fixed picture; the stages split ``steps`` (image ``steps // 2``, clip the rest).
    None for either: what the checkpoint was packed with."""
    if not prompts:
        raise UsageError("at least one prompt is needed")
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"strength must be in [0, 1], got {strength}")
    if steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    b = len(prompts)
    lt, lh, lw = pipe.latent_size(frames, height, width)
    c = pipe.dit.cfg.latent_channels
    for name, tensor in (("known_video", known_video), ("init_video", init_video)):
        if tensor is not None and tuple(tensor.shape) != (b, 3, frames, height, width):
            raise UsageError(
                f"{name} must be shaped {(b, 3, frames, height, width)}, got {tuple(tensor.shape)}"
            )
    if init_video is not None and strength == 0.0:
        return init_video.clone()
    known = mask = None
    if known_video is not None or known_frames is not None:
        if known_video is None or known_frames is None:
            raise UsageError("known_video and known_frames go together")
        if tuple(known_frames.shape) != (b, frames):
            raise UsageError(f"known_frames must be shaped {(b, frames)}, got {tuple(known_frames.shape)}")
        mask = pipe.latent_known(known_frames.bool())
        known = pipe.encode_video(known_video) if bool(mask.any()) else None
        if known is None:
            mask = None
    text = pipe.text.encode(prompts)
    null = pipe.text.encode([pipe.null_prompt] * b)
    guided = cfg != 1.0
    tokens = torch.cat([text.tokens, null.tokens]) if guided else text.tokens
    tmask = torch.cat([text.mask, null.mask]) if guided else text.mask
    pooled = torch.cat([text.pooled, null.pooled]) if guided else text.pooled

    def denoiser(known: Tensor | None, mask: Tensor | None) -> Callable[[Tensor, Tensor], Tensor]:
        k2 = None if known is None else (torch.cat([known, known]) if guided else known)
        m2 = None if mask is None else (torch.cat([mask, mask]) if guided else mask)

        def model(x: Tensor, t: Tensor) -> Tensor:
            xx = torch.cat([x, x]) if guided else x
            tt = torch.cat([t, t]) if guided else t
            out: Tensor = pipe.dit(xx, tt, tokens, y_mask=tmask, y_pooled=pooled, known=k2, known_mask=m2)
            out = out[:, :c]
            if not guided:
                return out
            cond, uncond = out.chunk(2)
            mixed: Tensor = uncond + cfg * (cond - uncond)
            return mixed

        return model

    if shift is None:
        shift = pipe.sample_shift
    if factorized is None:
        factorized = pipe.factorized
    if factorized and known is None and init_video is None and lt > 1 and steps > 1:
        # stage 1: the first latent frame alone is the image path of the causal VAE; the two
        # stages share the step budget, so ``steps`` still counts every step taken
        image_steps, steps = steps // 2, steps - steps // 2
        image_noise = _noise((c, 1, lh, lw), seed, b)
        image = run_sampler(
            pipe.diffusion, denoiser(None, None), image_noise, image_steps, method=method, shift=shift
        )
        known = torch.cat([image, torch.zeros(b, c, lt - 1, lh, lw)], dim=2)
        mask = torch.zeros(b, lt, dtype=torch.bool)
        mask[:, 0] = True
    noise = _noise((c, lt, lh, lw), seed, b)
    t_start, n_steps = 1.0, steps
    x = noise
    if init_video is not None and strength < 1.0:
        x = noise_to(pipe.diffusion, pipe.encode_video(init_video), noise, strength)
        t_start, n_steps = strength, max(1, round(steps * strength))
    sampler = denoiser(known, mask)
    z = run_sampler(pipe.diffusion, sampler, x, n_steps, method=method, t_start=t_start, shift=shift)
    if known is not None and mask is not None:
        keep = mask[:, None, :, None, None]
        z = torch.where(keep, known, z)
    return pipe.decode_latents(z)
