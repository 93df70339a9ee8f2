"""fivefold.video: a latent video diffusion transformer that trains and samples on a CPU.

The public names are imported lazily, so ``import fivefold.video`` does not load torch::

    from fivefold.video import load_pipeline, generate
    pipe = load_pipeline()  # the shipped model
    clip = generate(pipe, ["a red circle moving left"], frames=9, height=32, width=32)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Pipeline": "fivefold.video.sample",
    "load_pipeline": "fivefold.video.sample",
    "generate": "fivefold.video.sample",
    "DiT": "fivefold.video.dit",
    "DiTConfig": "fivefold.video.dit",
    "paper_config": "fivefold.video.dit",
    "VideoVAE": "fivefold.video.vae",
    "VAEConfig": "fivefold.video.vae",
    "DiffusionConfig": "fivefold.video.diffusion",
    "TrainConfig": "fivefold.video.train",
    "train": "fivefold.video.train",
    "VAETrainConfig": "fivefold.video.vae_train",
    "train_vae": "fivefold.video.vae_train",
    "TextEncoder": "fivefold.video.text",
    "save_video": "fivefold.video.media",
    "save_grid": "fivefold.video.media",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fivefold.video' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
