"""Fixtures for the video tests: tiny models and caches that need no text encoder or training."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from fivefold.video.diffusion import DiffusionConfig
from fivefold.video.dit import DiT, DiTConfig
from fivefold.video.latents import LatentCache
from fivefold.video.sample import Pipeline
from fivefold.video.text import TEXT_DIM, TextEncoder
from fivefold.video.vae import VAEConfig, VideoVAE

torch.set_num_threads(1)

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(filename: str) -> ModuleType:
    """A script of ``benchmarks/`` imported as a module (they are not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(filename).stem}", BENCHMARKS / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_VAE = VAEConfig(latent_channels=4, spatial_factor=4, temporal_factor=4, channels=(8, 8, 8))
TINY_DIT = DiTConfig(hidden=32, depth=2, heads=2, patch=(1, 2, 2), latent_channels=4)


def fake_text(prompt: str, n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "little")
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, TEXT_DIM, generator=g).half(), torch.randn(TEXT_DIM, generator=g)


def fake_cache(
    n: int = 32, captions: int = 6, latent: tuple[int, int, int] = (3, 4, 4), seed: int = 0
) -> LatentCache:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(captions, 8, TEXT_DIM, generator=g).half()
    mask = torch.zeros(captions, 8, dtype=torch.bool)
    mask[:, :5] = True
    return LatentCache(
        latents=torch.randn(n, 4, *latent, generator=g),
        caption_ids=torch.randint(1, captions, (n,), generator=g),
        tokens=tokens,
        token_mask=mask,
        pooled=torch.randn(captions, TEXT_DIM, generator=g),
        null_id=0,
        meta={},
    )


def fake_buckets(
    sizes: tuple[tuple[int, int, int], ...] = ((3, 4, 4), (3, 4, 6), (1, 4, 4)), n: int = 32
) -> list[LatentCache]:
    """Caches of several latent sizes (T, H, W): a video bucket, a wider one and images."""
    return [fake_cache(n=n, latent=size, seed=i) for i, size in enumerate(sizes)]


def tiny_pipeline(jitter: float = 0.05) -> Pipeline:
    torch.manual_seed(0)
    vae = VideoVAE(TINY_VAE).eval()
    dit = DiT(TINY_DIT).eval()
    with torch.no_grad():  # adaLN-Zero starts as the zero map; make the model do something
        for p in dit.parameters():
            p.add_(jitter * torch.randn_like(p))
    text = TextEncoder()
    for prompt in ("", "a red circle moving left", "a blue square moving up"):
        text.cache[prompt] = fake_text(prompt)
    return Pipeline(vae, dit, text, DiffusionConfig(), {"null_prompt": ""})


@pytest.fixture
def pipe() -> Pipeline:
    return tiny_pipeline()
