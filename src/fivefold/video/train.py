"""``fivefold video train``: fit the DiT on a latent cache, on one CPU or with torchrun/DDP.

Every random choice of step ``s`` (which clips, the noise, the timesteps, the known-frame masks,
which captions are dropped for guidance) is drawn for the GLOBAL batch from a generator seeded
by (seed, s); rank r of W then takes its slice. So a resumed run replays the same numbers, and
W processes with B/W examples each make the same update as one process with B (DDP averages
gradients; the loss is a per-example mean).

Size buckets (opt-in): given several latent caches of different (T, H, W), step ``s`` trains on
the one drawn from its own (seed, s) stream, so every rank and every resumed run agrees on it
without communication; images are a bucket with one frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from fivefold._common.errors import UsageError
from fivefold.video import trainloop as loop
from fivefold.video.diffusion import DiffusionConfig, training_pair
from fivefold.video.dit import DiT, DiTConfig, deepen, repatch, repatch_factor
from fivefold.video.latents import LatentCache, latent_space, latent_space_differences
from fivefold.video.patches import check_latent_grid

MaskMode = Literal["none", "first", "last", "first_last", "span"]
MASK_MODES: tuple[MaskMode, ...] = ("none", "first", "last", "first_last", "span")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    cond_dropout: float = 0.1
    mask_prob: float = 0.5  # share of examples with some known frames
    image_every: int = 8  # every n-th step trains on single frames (images); 0: never
    ckpt_every: int = 100
    log_every: int = 10
    compile: bool = False
    bf16: bool = False  # autocast on CUDA only
    fused_adamw: bool = False  # one fused AdamW kernel (rounding differs from the default foreach)
    # relative odds of the known-frame modes first, last, first+last, span (when some are known)
    mask_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # extra loss weight on latent pixels far from their frame's background (see object_weights)
    object_weight: float = 0.0


# options added after runs were saved (see trainloop.run_fields)
_LATER_FIELDS = ("fused_adamw", "mask_weights", "object_weight")


def run_record(tc: TrainConfig, caches: Sequence[LatentCache] | None = None) -> dict[str, Any]:
    """What a checkpoint stores as its ``train_config`` (and what --resume must match); with
    buckets, their latent sizes too."""
    record = loop.run_fields(tc, _LATER_FIELDS)
    if caches is not None:
        record["buckets"] = [list(c.latents.shape[2:]) for c in caches]
    return record


def step_bucket(tc: TrainConfig, step: int, buckets: int) -> int:
    """The bucket of step ``step``: uniform, from a stream of its own (the batch's is untouched)."""
    if buckets == 1:
        return 0
    return int(torch.randint(buckets, (1,), generator=loop.step_generator(tc.seed, step, stream=1)))


def sample_known_mask(
    batch: int,
    frames: int,
    mask_prob: float,
    g: torch.Generator,
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0),
) -> Tensor:
    """(B, T) bool over latent frames: none / first / last / first+last / a random span, the four
    with some known frames drawn in proportion to ``weights``."""
    mask = torch.zeros(batch, frames, dtype=torch.bool)
    if frames < 2:
        return mask
    use = torch.rand(batch, generator=g) < mask_prob
    if len(set(weights)) == 1:  # the original uniform draw, so older runs replay the same masks
        mode = torch.randint(1, len(MASK_MODES), (batch,), generator=g)
    else:
        odds = torch.tensor(weights, dtype=torch.float64)
        mode = 1 + torch.multinomial(odds, batch, replacement=True, generator=g)
    starts = torch.randint(0, frames, (batch,), generator=g)
    lengths = torch.randint(1, frames, (batch,), generator=g)
    for i in range(batch):
        if not use[i]:
            continue
        name = MASK_MODES[int(mode[i])]
        if name in ("first", "first_last"):
            mask[i, 0] = True
        if name in ("last", "first_last"):
            mask[i, -1] = True
        if name == "span":
            s = min(int(starts[i]), frames - 1)
            mask[i, s : min(frames, s + int(lengths[i]))] = True
            if mask[i].all():
                mask[i, -1] = False
    return mask


@dataclass
class StepBatch:
    x0: Tensor
    ids: Tensor
    known_mask: Tensor
    pixel_weight: Tensor | None = None  # (B, 1, T, H, W) loss weights, None for uniform


def object_weights(x0: Tensor, alpha: float) -> Tensor:
    """Per latent pixel, 1 + ``alpha`` x its distance from the frame's background (the median latent
    of each channel and frame), scaled so each frame's farthest pixel gets 1 + alpha.

    A circle and a square of one size differ in a few corner pixels while their colour fills all of
    them, so a plain MSE barely rewards drawing the prompted shape; weighting the object's pixels
    shifts the loss towards it."""
    background = x0.flatten(3).median(dim=3).values[..., None, None]
    distance = (x0 - background).abs().mean(1, keepdim=True)
    distance = distance / (distance.amax(dim=(3, 4), keepdim=True) + 1e-6)
    return 1.0 + alpha * distance


def global_batch(cache: LatentCache, tc: TrainConfig, step: int) -> tuple[StepBatch, torch.Generator]:
    g = loop.step_generator(tc.seed, step)
    idx = torch.randint(0, len(cache), (tc.batch_size,), generator=g)
    x0 = cache.latents[idx].float()
    if tc.image_every and step % tc.image_every == tc.image_every - 1:
        x0 = x0[:, :, :1]  # the causal VAE's first latent frame is the first frame's image latent
    ids = cache.caption_ids[idx].clone()
    drop = torch.rand(tc.batch_size, generator=g) < tc.cond_dropout
    ids[drop] = cache.null_id
    known = sample_known_mask(tc.batch_size, x0.shape[2], tc.mask_prob, g, tc.mask_weights)
    pixel_weight = object_weights(x0, tc.object_weight) if tc.object_weight else None
    return StepBatch(x0, ids, known, pixel_weight), g


def loss_fn(
    model: nn.Module, cache: LatentCache, dc: DiffusionConfig, batch: StepBatch, g: torch.Generator, sl: slice
) -> Tensor:
    """Mean over examples of the per-example MSE on unknown latent frames."""
    xt, t, target = training_pair(dc, batch.x0, g)  # drawn for the global batch, then sliced
    xt, t, target = xt[sl], t[sl], target[sl]
    x0, known = batch.x0[sl], batch.known_mask[sl]
    text = cache.text(batch.ids[sl])
    pred = model(xt, t, text.tokens, y_mask=text.mask, y_pooled=text.pooled, known=x0, known_mask=known)
    pred = pred[:, : target.shape[1]]
    weight = (~known).to(pred.dtype)[:, None, :, None, None].expand_as(target)
    if batch.pixel_weight is not None:
        weight = weight * batch.pixel_weight[sl]
    per_example = ((pred - target) ** 2 * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)
    loss: Tensor = per_example.mean()
    return loss


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Join the torchrun group (gloo on CPU, nccl on GPU) when launched with WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return True


def _check_caches(caches: Sequence[LatentCache], mc: DiTConfig, tc: TrainConfig) -> None:
    if not caches:
        raise UsageError("no latent cache to train on")
    for cache in caches:
        t, h, w = cache.latents.shape[2:]
        if cache.latents.shape[1] != mc.latent_channels:
            raise UsageError(
                f"the latent cache has {cache.latents.shape[1]} channels "
                f"but the model expects {mc.latent_channels}"
            )
        if len(caches) > 1:  # one size is checked by the model, as before
            check_latent_grid(t, h, w, mc.patch)
            if tc.image_every:
                check_latent_grid(1, h, w, mc.patch)


def _check_same_latents(init: Path, init_vae: dict[str, Any] | None, vae: dict[str, Any] | None) -> None:
    """A second stage must see the latent space the first learned: same scale and shift."""
    if init_vae is None or vae is None:
        return
    old, new = latent_space(init_vae["config"]), latent_space(vae["config"])
    differ = latent_space_differences(old, new)
    if differ:
        key = differ[0]
        raise UsageError(
            f"--init {init} learned latents at VAE {key.removeprefix('vae_')} {old[key]:.4f}; --vae has "
            f"{new[key]:.4f}. Pass the VAE the first stage was trained with"
        )


def _check_init_config(
    init: Path, saved: dict[str, Any], mc: DiTConfig, deepen_init: bool, repatch_init: bool
) -> DiTConfig:
    """Refuse an ``--init`` model of another config (with ``deepen_init``, any depth up to
    ``mc``'s is allowed; with ``repatch_init``, finer patches); returns the init's config."""
    old = DiTConfig.from_dict(saved)
    compared = old
    if deepen_init:
        compared = dataclasses.replace(compared, depth=mc.depth)
    if repatch_init:
        compared = dataclasses.replace(compared, patch=mc.patch, rope_scale=mc.rope_scale)
    try:
        loop.check_config(init, "DiT", compared.identity(), mc.identity())
    except UsageError as exc:
        if old.depth < mc.depth and not deepen_init:
            raise UsageError(f"{exc}; --deepen grows a shallower model") from None
        if old.patch != mc.patch and not repatch_init:
            raise UsageError(f"{exc}; --repatch splits a model's patches") from None
        raise
    return old


def _repatched(saved: dict[str, Any], mc: DiTConfig) -> DiTConfig:
    """``mc`` with the RoPE scale a model re-patched from one of config ``saved`` needs."""
    old = DiTConfig.from_dict(saved)
    factor = repatch_factor(old.patch, mc.patch)
    return dataclasses.replace(mc, rope_scale=old.rope_scale / factor)


def train(
    out: Path,
    cache: LatentCache | Sequence[LatentCache],
    mc: DiTConfig,
    tc: TrainConfig,
    *,
    vae_state: dict[str, Any] | None = None,
    dc: DiffusionConfig | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    echo_every: int = 0,
    init: Path | None = None,
    deepen_init: bool = False,
    repatch_init: bool = False,
) -> dict[str, Any]:
    """Train; returns a summary. ``cache``: one latent cache, or a sequence of caches of different
    sizes (buckets; each step draws its batch from one). ``stop_after``: leave after that many
    steps of this run (the schedule still spans ``tc.steps``), as an interrupted run would.
    ``init``: start from the weights (and EMA) of another DiT run's checkpoint of the same config,
    with a fresh optimiser and schedule (a second stage). ``deepen_init``: ``init`` may be shallower
    than ``mc``; its blocks are spread over the new depth (see :func:`deepen`). ``repatch_init``:
    ``mc.patch`` may split ``init``'s (see :func:`repatch`); ``mc``'s RoPE scale follows."""
    dc = dc or DiffusionConfig()
    bucketed = not isinstance(cache, LatentCache)
    caches = [cache] if isinstance(cache, LatentCache) else list(cache)  # (narrows the type)
    rank, world = _dist_info()
    if tc.batch_size % world:
        raise UsageError(f"batch size {tc.batch_size} is not divisible by {world} processes")
    first = None if init is None else loop.load_checkpoint(init)
    if first is not None and first["kind"] != "dit":
        raise UsageError(f"{init} is a {first['kind']} checkpoint, not a DiT one")
    if repatch_init:
        if first is None:
            raise UsageError("--repatch needs --init (the model whose patches to split)")
        mc = _repatched(first["config"], mc)
    _check_caches(caches, mc, tc)
    record = run_record(tc, caches if bucketed else None)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "dit.pt"
    torch.manual_seed(tc.seed)
    model = DiT(mc)
    ema = loop.EMA(model, tc.ema_decay)
    start = 0
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        betas=(0.9, 0.99),
        **({"fused": True} if tc.fused_adamw else {}),
    )
    if init is not None and first is not None:
        old_cfg = _check_init_config(init, first["config"], mc, deepen_init, repatch_init)
        old_depth = old_cfg.depth
        _check_same_latents(init, first.get("vae"), vae_state)
        record["init"] = {"checkpoint": str(init), "step": int(first["step"])}
        if old_depth != mc.depth:
            record["init"]["depth"] = old_depth
        if old_cfg.patch != mc.patch:
            record["init"]["patch"] = list(old_cfg.patch)
        earlier = first["train_config"]
        # every earlier stage's run config, oldest first, so a packed model knows all it trained on
        own = {k: v for k, v in earlier.items() if k != "lineage"}
        record["lineage"] = [*earlier.get("lineage", []), own]
        if not resume:
            weights, averaged = first["model"], first["ema"]
            if old_cfg.patch != mc.patch:
                weights = repatch(weights, old_cfg.patch, model)
                averaged = repatch(averaged, old_cfg.patch, model)
            if old_depth != mc.depth:
                weights, averaged = deepen(weights, old_depth, model), deepen(averaged, old_depth, model)
            model.load_state_dict(weights)
            ema.load_state_dict(averaged)
    if resume:
        state = loop.load_checkpoint(ckpt_path)
        if state["kind"] != "dit":
            raise UsageError(f"{ckpt_path} is a {state['kind']} checkpoint, not a DiT one")
        loop.check_config(ckpt_path, "DiT", state["config"], mc.identity())
        loop.check_config(ckpt_path, "diffusion", state["diffusion"], dataclasses.asdict(dc))
        skip = ("ckpt_every", "log_every", "lineage")  # lineage follows from init, compared already
        saved_tc = {k: v for k, v in state["train_config"].items() if k not in skip}
        wanted_tc = {k: v for k, v in record.items() if k not in skip}
        loop.check_config(ckpt_path, "training run", saved_tc, wanted_tc)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model.to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    if tc.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    per_rank = tc.batch_size // world
    sl = slice(rank * per_rank, (rank + 1) * per_rank)
    log = (
        loop.CSVLog(out / "train_log.csv", ["step", "loss", "lr"], start if resume else None)
        if rank == 0
        else None
    )

    def save(step: int) -> None:
        if rank != 0:
            return
        loop.atomic_save(
            {
                "kind": "dit",
                "config": mc.identity(),
                "diffusion": dataclasses.asdict(dc),
                "train_config": record,
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "vae": vae_state,
                "null_prompt": "",
            },
            ckpt_path,
        )

    end = tc.steps if stop_after is None else min(tc.steps, start + stop_after)
    losses: list[float] = []
    used = [0] * len(caches)
    progress = loop.Progress(tc.steps, start, "dit", echo_every if rank == 0 else 0)
    model.train()
    with progress.running():
        for step in range(start, end):
            lr = loop.lr_at(step, tc.lr, tc.warmup, tc.steps)
            for group in opt.param_groups:
                group["lr"] = lr
            bucket = step_bucket(tc, step, len(caches))
            used[bucket] += 1
            step_cache = caches[bucket]
            batch, g = global_batch(step_cache, tc, step)
            autocast = (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if tc.bf16 and device.type == "cuda"
                else contextlib.nullcontext()
            )
            with autocast:
                loss = loss_fn(net, step_cache, dc, _to(batch, device), g, sl)
            reported = loss.detach().clone()
            if world > 1:
                dist.all_reduce(reported)
                reported /= world
            value = reported.item()
            if not math.isfinite(value):
                raise loop.NaNLossError(
                    f"loss is {value} at step {step}; stopped, last good checkpoint kept at {ckpt_path}"
                    + (f" (step {(step // tc.ckpt_every) * tc.ckpt_every})" if ckpt_path.is_file() else "")
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            ema.update(model, step)
            losses.append(value)
            if log is not None and (step % tc.log_every == 0 or step + 1 == tc.steps):
                log.write({"step": step, "loss": value, "lr": lr})
            progress.update(step, value)
            if (step + 1) % tc.ckpt_every == 0 or step + 1 == end:
                save(step + 1)
    if rank == 0 and (out / "train_log.csv").is_file():
        loop.plot_csv(out / "train_log.csv", out / "train_loss.png")
    sps, _ = progress.rate(max(end - 1, start))
    summary = {"steps": end, "losses": losses, "steps_per_s": sps, "checkpoint": str(ckpt_path)}
    if bucketed:
        summary["bucket_steps"] = used
    return summary


def _to(batch: StepBatch, device: torch.device) -> StepBatch:
    if device.type == "cpu":
        return batch
    weight = None if batch.pixel_weight is None else batch.pixel_weight.to(device)
    # ids stay on the CPU: they index the text cache there
    return dataclasses.replace(
        batch, x0=batch.x0.to(device), known_mask=batch.known_mask.to(device), pixel_weight=weight
    )
