"""Pack a training checkpoint into the small file ``load_pipeline`` reads (EMA weights in fp16)."""

from __future__ import annotations

from pathlib import Path

import torch

from fivefold._common.errors import UsageError
from fivefold.video.trainloop import atomic_save, load_checkpoint


def pack(
    checkpoint: Path,
    out: Path,
    text_cache: Path | None = None,
    meta: dict[str, object] | None = None,
    prompts: list[str] | None = None,
) -> int:
    """Write the sampling checkpoint; ``prompts`` limits the embedded text cache (the null prompt is
    always kept). Returns its size in bytes."""
    state = load_checkpoint(checkpoint)
    if state["kind"] != "dit":
        raise UsageError(
            f"{checkpoint} is a {state['kind']} checkpoint; pack takes a DiT training checkpoint"
        )
    if state.get("vae") is None:
        raise UsageError(f"{checkpoint} has no VAE inside")
    blob = {
        "kind": "pipeline",
        "config": state["config"],
        "diffusion": state["diffusion"],
        "dit": {k: v.half() if v.dtype.is_floating_point else v for k, v in state["ema"].items()},
        "vae": state["vae"],
        "null_prompt": state.get("null_prompt", ""),
        "meta": {"trained_steps": state["step"], "train_config": state["train_config"], **(meta or {})},
    }
    if text_cache is not None:
        cache = torch.load(text_cache, map_location="cpu", weights_only=True)
        if prompts is not None:
            keep = {"", *prompts}
            cache = {p: v for p, v in cache.items() if p in keep}
        blob["text_cache"] = cache
    atomic_save(blob, out)
    return out.stat().st_size
