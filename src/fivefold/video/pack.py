"""Pack a training checkpoint into the small file ``load_pipeline`` reads (EMA weights in fp16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fivefold._common.errors import UsageError
from fivefold.video.trainloop import atomic_save, load_checkpoint


def pack(
    checkpoint: Path,
    out: Path,
    text_cache: Path | None = None,
    meta: dict[str, object] | None = None,
    prompts: list[str] | None = None,
    vae: Path | None = None,
) -> int:
    """Write the sampling checkpoint; ``prompts`` limits the embedded text cache (the null prompt is
    always kept); ``vae`` swaps in a VAE whose encoder is the training one (a decoder fine-tune),
    anything else would change the latents the DiT learned. Returns the size in bytes."""
    state = load_checkpoint(checkpoint)
    if state["kind"] != "dit":
        raise UsageError(
            f"{checkpoint} is a {state['kind']} checkpoint; pack takes a DiT training checkpoint"
        )
    if state.get("vae") is None:
        raise UsageError(f"{checkpoint} has no VAE inside")
    vae_blob = state["vae"]
    if vae is not None:
        other = load_checkpoint(vae)
        enc = {k: v for k, v in other["model"].items() if k.startswith("encoder.")}
        ref = {k: v for k, v in vae_blob["model"].items() if k.startswith("encoder.")}
        if enc.keys() != ref.keys() or any(not torch.equal(enc[k], ref[k]) for k in ref):
            raise UsageError(f"{vae} has another encoder than the one {checkpoint} was trained on")
        # the latent scale/shift the DiT was trained with stay; only the weights change
        vae_blob = {"config": vae_blob["config"], "model": other["model"]}
    blob = {
        "kind": "pipeline",
        "config": state["config"],
        "diffusion": state["diffusion"],
        "dit": {k: v.half() if v.dtype.is_floating_point else v for k, v in state["ema"].items()},
        "vae": vae_blob,
        "null_prompt": state.get("null_prompt", ""),
        "meta": {
            "trained_steps": state["step"],
            "train_config": state["train_config"],
            "lineage": earlier_stages(checkpoint, state["train_config"]),
            **(meta or {}),
        },
    }
    if text_cache is not None:
        cache = torch.load(text_cache, map_location="cpu", weights_only=True)
        if prompts is not None:
            keep = {"", *prompts}
            cache = {p: v for p, v in cache.items() if p in keep}
        blob["text_cache"] = cache
    atomic_save(blob, out)
    return out.stat().st_size


def earlier_stages(checkpoint: Path, train_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The run configs of the stages before this one (``train --init``), oldest first. Recorded in
    the checkpoint since session 4; for an older one, found by following each stage's ``init``
    path (as recorded, else relative to the folder holding the run folder) as far as the files
    are there."""
    if "lineage" in train_config:
        return list(train_config["lineage"])
    earlier: list[dict[str, Any]] = []
    current, config, visited = checkpoint, train_config, set()
    while isinstance(config.get("init"), dict):
        named = Path(config["init"]["checkpoint"])
        found = next((p for p in (named, current.parent.parent / named) if p.is_file()), None)
        if found is None or found.resolve() in visited:
            break
        visited.add(found.resolve())
        config = load_checkpoint(found)["train_config"]
        earlier.insert(0, {k: v for k, v in config.items() if k != "lineage"})
        if "lineage" in config:
            earlier[:0] = config["lineage"]
            break
        current = found
    return earlier
