"""Precomputed training caches: VAE latents of synthetic clips and their captions' embeddings.

The DiT never sees pixels during training: clips are rendered and encoded once, captions are
embedded once per distinct string. The cache is one ``.pt`` file, reusable across runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from fivefold._common.errors import UsageError
from fivefold.video.text import TextBatch, TextEncoder
from fivefold.video.vae import VideoVAE


@dataclass
class LatentCache:
    latents: Tensor  # (N, C, T', H', W'), scaled for diffusion
    caption_ids: Tensor  # (N,) index into the text tables
    tokens: Tensor  # (U, L, 384) float16
    token_mask: Tensor  # (U, L) bool
    pooled: Tensor  # (U, 384)
    null_id: int  # the row of the empty prompt (classifier-free guidance's null condition)
    meta: dict[str, int]

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def text(self, ids: Tensor) -> TextBatch:
        return TextBatch(self.tokens[ids].float(), self.token_mask[ids], self.pooled[ids])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(self.__dict__, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LatentCache:
        if not path.is_file():
            raise UsageError(f"latent cache {path} does not exist")
        return cls(**torch.load(path, map_location="cpu", weights_only=False))


@torch.no_grad()
def build_cache(
    vae: VideoVAE,
    text: TextEncoder,
    *,
    clips: int,
    frames: int,
    height: int,
    width: int,
    seed: int,
    batch: int = 64,
    echo: bool = False,
) -> LatentCache:
    from fivefold.video.data import MovingShapesDataset

    ds = MovingShapesDataset(frames, height, width, clips, seed=seed)
    latents: list[Tensor] = []
    captions: list[str] = []
    for start in range(0, clips, batch):
        items = [ds[i] for i in range(start, min(clips, start + batch))]
        latents.append(vae.encode(torch.stack([it["video"] for it in items])))
        captions.extend(it["caption"] for it in items)
        if echo and (start // batch) % 20 == 0:
            print(f"cache: encoded {start + len(items)}/{clips} clips", flush=True)
    unique = ["", *sorted(set(captions))]
    index = {c: i for i, c in enumerate(unique)}
    tb = text.encode(unique)
    return LatentCache(
        latents=torch.cat(latents),
        caption_ids=torch.tensor([index[c] for c in captions]),
        tokens=tb.tokens.half(),
        token_mask=tb.mask,
        pooled=tb.pooled,
        null_id=0,
        meta={"frames": frames, "height": height, "width": width, "seed": seed, "clips": clips},
    )
