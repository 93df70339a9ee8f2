"""Precomputed training caches: VAE latents of synthetic clips and their captions' embeddings.

The DiT never sees pixels during training: clips are rendered and encoded once, captions are
embedded once per distinct string. The cache is one ``.pt`` file, reusable across runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fivefold._common.errors import UsageError
from fivefold._common.files import atomic_path
from fivefold.video.text import TextBatch, TextEncoder
from fivefold.video.vae import VideoVAE

Bucket = tuple[int, int, int]  # pixel (frames, height, width)


@dataclass
class LatentCache:
    latents: Tensor  # (N, C, T', H', W'), scaled for diffusion
    caption_ids: Tensor  # (N,) index into the text tables
    tokens: Tensor  # (U, L, 384) float16
    token_mask: Tensor  # (U, L) bool
    pooled: Tensor  # (U, 384)
    null_id: int  # the row of the empty prompt (classifier-free guidance's null condition)
    meta: dict[str, Any]  # sizes, seed, clips and the VAE's latent scale/shift

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def text(self, ids: Tensor) -> TextBatch:
        return TextBatch(self.tokens[ids].float(), self.token_mask[ids], self.pooled[ids])

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.__dict__, tmp)

    @classmethod
    def load(cls, path: Path) -> LatentCache:
        if not path.is_file():
            raise UsageError(f"latent cache {path} does not exist")
        data = torch.load(path, map_location="cpu", weights_only=False)
        if "buckets" in data:
            raise UsageError(f"latent cache {path} holds size buckets; train with --buckets")
        return cls(**data)


def bucket_name(bucket: Bucket) -> str:
    return "x".join(map(str, bucket))


def save_buckets(path: Path, caches: Sequence[LatentCache], buckets: Sequence[Bucket]) -> None:
    """One file for all buckets' caches (they share the caption tables)."""
    blob = {"buckets": [bucket_name(b) for b in buckets], "caches": [c.__dict__ for c in caches]}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_buckets(path: Path, buckets: Sequence[Bucket]) -> list[LatentCache]:
    """The per-bucket caches in ``path``; a :class:`UsageError` if it was built for other sizes."""
    if not path.is_file():
        raise UsageError(f"latent cache {path} does not exist")
    data = torch.load(path, map_location="cpu", weights_only=False)
    wanted = [bucket_name(b) for b in buckets]
    if "buckets" not in data:
        raise UsageError(f"latent cache {path} has one size, not the buckets {','.join(wanted)}")
    if data["buckets"] != wanted:
        raise UsageError(
            f"latent cache {path} holds buckets {','.join(data['buckets'])}, not {','.join(wanted)}"
        )
    return [LatentCache(**fields) for fields in data["caches"]]


def latent_space(vae_config: Mapping[str, Any]) -> dict[str, float]:
    """What fixes the latent space, given the encoder: the VAE's scale and shift (a decoder-only
    fine-tune keeps the encoder but may finalise with other values). Caches record it."""
    return {"vae_scale": float(vae_config["scale"]), "vae_shift": float(vae_config["shift"])}


def latent_space_differences(want: Mapping[str, float], have: Mapping[str, Any]) -> list[str]:
    """The keys of the :func:`latent_space` record ``want`` on which ``have`` (another record, or
    a cache's meta) holds a different value; keys ``have`` lacks are not compared."""
    return [k for k in want if k in have and abs(float(have[k]) - want[k]) > 1e-6]


def vae_stamp(vae: VideoVAE) -> dict[str, float]:
    return latent_space(vae.cfg.to_dict())


def check_cache_vae(path: Path, caches: Sequence[LatentCache], vae: VideoVAE) -> None:
    """A :class:`UsageError` when ``path`` was encoded with another latent scale/shift than
    ``vae``'s: the DiT would learn latents that the recorded VAE then decodes wrongly. Caches
    from before the stamp carry none and pass."""
    want = vae_stamp(vae)
    for cache in caches:
        if latent_space_differences(want, cache.meta):
            raise UsageError(
                f"latent cache {path} was encoded at latent scale {cache.meta['vae_scale']:.4f} shift "
                f"{cache.meta['vae_shift']:.4f}; --vae has {want['vae_scale']:.4f}/{want['vae_shift']:.4f}. "
                "Pass the VAE the cache was built with (a fine-tuned decoder goes in at pack --vae)"
            )


def _encode(
    vae: VideoVAE, ds: Any, indices: Sequence[int], batch: int, echo: bool
) -> tuple[list[Tensor], list[str]]:
    latents: list[Tensor] = []
    captions: list[str] = []
    for start in range(0, len(indices), batch):
        items = [ds[i] for i in indices[start : start + batch]]
        latents.append(vae.encode(torch.stack([it["video"] for it in items])))
        captions.extend(it["caption"] for it in items)
        if echo and (start // batch) % 20 == 0:
            print(f"cache: encoded {start + len(items)}/{len(indices)} clips", flush=True)
    return latents, captions


def _caption_tables(text: TextEncoder, captions: Sequence[str]) -> tuple[dict[str, int], TextBatch]:
    unique = ["", *sorted(set(captions))]
    return {c: i for i, c in enumerate(unique)}, text.encode(unique)


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
    latents, captions = _encode(vae, ds, range(clips), batch, echo)
    index, tb = _caption_tables(text, captions)
    return LatentCache(
        latents=torch.cat(latents),
        caption_ids=torch.tensor([index[c] for c in captions]),
        tokens=tb.tokens.half(),
        token_mask=tb.mask,
        pooled=tb.pooled,
        null_id=0,
        meta={"frames": frames, "height": height, "width": width, "seed": seed, "clips": clips,
              **vae_stamp(vae)},
    )


@torch.no_grad()
def build_bucket_caches(
    vae: VideoVAE,
    text: TextEncoder,
    *,
    clips: int,
    buckets: Sequence[Bucket],
    seed: int,
    batch: int = 64,
    echo: bool = False,
) -> list[LatentCache]:
    """One cache per (frames, height, width) bucket: clip i of the synthetic set is rendered at
    ``buckets[i % len(buckets)]`` (the dataset's own bucketing), so every bucket holds different
    clips; all buckets share one caption table."""
    from fivefold.video.data import MovingShapesDataset

    if not buckets:
        raise UsageError("no buckets given")
    n = len(buckets)
    if clips < n:
        raise UsageError(f"--clips {clips} is fewer than the {n} buckets")
    ds = MovingShapesDataset(length=clips, seed=seed, buckets=list(buckets))
    encoded = [_encode(vae, ds, range(k, clips, n), batch, echo) for k in range(n)]
    index, tb = _caption_tables(text, [c for _, captions in encoded for c in captions])
    tokens = tb.tokens.half()
    return [
        LatentCache(
            latents=torch.cat(latents),
            caption_ids=torch.tensor([index[c] for c in captions]),
            tokens=tokens,
            token_mask=tb.mask,
            pooled=tb.pooled,
            null_id=0,
            meta={"frames": f, "height": h, "width": w, "seed": seed, "clips": len(captions),
                  **vae_stamp(vae)},
        )
        for (latents, captions), (f, h, w) in zip(encoded, buckets, strict=True)
    ]
