"""``fivefold video vae-train``: fit the video VAE on synthetic moving shapes.

Clip ``i`` of step ``s`` is clip ``s*batch + i`` of a deterministic generator, so a resumed run
sees the same data. At the end the latent scale (std over training clips) is stored in the
config, and PSNR/SSIM are measured on clips of attribute combinations held out of training.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fivefold._common.errors import UsageError
from fivefold._common.files import write_text_atomic
from fivefold.video.trainloop import (
    CSVLog,
    NaNLossError,
    Progress,
    atomic_save,
    check_config,
    load_checkpoint,
    lr_at,
    plot_csv,
    run_fields,
    step_generator,
)
from fivefold.video.vae import VAEConfig, VideoVAE, check_video_size, psnr, ssim


@dataclass(frozen=True)
class VAETrainConfig:
    steps: int = 1500
    batch_size: int = 8
    lr: float = 1e-3
    warmup: int = 50
    frames: int = 5  # 1 + 4: one full temporal group; the convolutions then run on any length
    eval_frames: int = 9
    height: int = 32
    width: int = 32
    seed: int = 0
    grad_clip: float = 1.0
    ckpt_every: int = 100
    log_every: int = 10
    decoder_only: bool = False  # fine-tune the decoder of --init; latents (and a DiT on them) stay valid
    edge_weight: float = 0.0  # weight of the gradient-difference term (sharper corners); 0: off


# options added after runs were saved (see trainloop.run_fields)
_LATER_FIELDS = ("edge_weight",)


def _batch(tc: VAETrainConfig, step: int, held_out: bool = False, frames: int | None = None) -> torch.Tensor:
    from fivefold.video.data import HELD_OUT_COMBOS, MovingShapesDataset

    t = frames or tc.frames
    if held_out:
        ds = MovingShapesDataset(t, tc.height, tc.width, 10**9, seed=tc.seed + 7_777, only=HELD_OUT_COMBOS)
    else:
        ds = MovingShapesDataset(t, tc.height, tc.width, 10**9, seed=tc.seed)
    start = step * tc.batch_size
    return torch.stack([ds[start + i]["video"] for i in range(tc.batch_size)])


def train_vae(
    out: Path,
    cfg: VAEConfig,
    tc: VAETrainConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    echo_every: int = 0,
    init: Path | None = None,
) -> dict[str, Any]:
    """Train, then finalise (latent scale, held-out PSNR/SSIM). ``stop_after``: leave after that
    many steps of this run, the schedule still spanning ``tc.steps``."""
    check_video_size(tc.frames, tc.height, tc.width, temporal=cfg.temporal_factor, spatial=cfg.spatial_factor)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "vae.pt"
    torch.manual_seed(tc.seed)
    model = VideoVAE(cfg)
    if init is not None:
        start_from = load_vae(init)
        check_config(init, "VAE", _shape_fields(start_from.cfg.to_dict()), _shape_fields(cfg.to_dict()))
        model.load_state_dict(start_from.state_dict())
    elif tc.decoder_only:
        raise UsageError("decoder-only training needs a VAE to start from (--init)")
    trainable = model.decoder.parameters() if tc.decoder_only else model.parameters()
    if tc.decoder_only:
        model.encoder.requires_grad_(False)
    opt = torch.optim.AdamW(trainable, lr=tc.lr, weight_decay=0.0, betas=(0.9, 0.99))
    start = 0
    if resume:
        state = load_checkpoint(ckpt_path)
        if state["kind"] != "vae":
            raise UsageError(f"{ckpt_path} is a {state['kind']} checkpoint, not a VAE one")
        check_config(ckpt_path, "VAE", state["config"], cfg.to_dict())
        check_config(ckpt_path, "VAE run", state["train_config"], run_fields(tc, _LATER_FIELDS))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
    log = CSVLog(out / "vae_log.csv", ["step", "loss", "rec", "kl", "lr"], start if resume else None)

    def save(step: int) -> None:
        atomic_save(
            {
                "kind": "vae",
                "config": cfg.to_dict(),
                "train_config": run_fields(tc, _LATER_FIELDS),
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
            },
            ckpt_path,
        )

    progress = Progress(tc.steps, start, "vae", echo_every)
    with progress.running():
        end = tc.steps if stop_after is None else min(tc.steps, start + stop_after)
        for step in range(start, end):
            lr = lr_at(step, tc.lr, tc.warmup, tc.steps)
            for group in opt.param_groups:
                group["lr"] = lr
            x = _batch(tc, step)
            loss, parts = model.loss(x, generator=step_generator(tc.seed, step), edge_weight=tc.edge_weight)
            if not math.isfinite(loss.item()):
                raise NaNLossError(
                    f"VAE loss is {loss.item()} at step {step}; stopped, "
                    f"last good checkpoint kept at {ckpt_path}"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            if step % tc.log_every == 0 or step + 1 == tc.steps:
                log.write(
                    {"step": step, "loss": loss.item(), "rec": parts["rec"], "kl": parts["kl"], "lr": lr}
                )
            progress.update(step, loss.item())
            if (step + 1) % tc.ckpt_every == 0 or step + 1 == end:
                save(step + 1)
    plot_csv(out / "vae_log.csv", out / "vae_loss.png")
    return finalize_vae(out, model, tc)


@torch.no_grad()
def finalize_vae(out: Path, model: VideoVAE, tc: VAETrainConfig, eval_batches: int = 4) -> dict[str, Any]:
    """Fix the latent scale from training clips, then measure PSNR/SSIM on held-out clips."""
    model.eval()
    raw = dataclasses.replace(model.cfg, scale=1.0, shift=0.0)
    model.cfg = raw
    lat = torch.cat([model.encode(_batch(tc, 10**6 + i, frames=tc.eval_frames)) for i in range(eval_batches)])
    shift = float(lat.mean())
    scale = float(lat.std())
    model.cfg = dataclasses.replace(raw, scale=scale, shift=shift)
    p, s = [], []
    for i in range(eval_batches):
        x = _batch(tc, i, held_out=True, frames=tc.eval_frames)
        y = model.decode(model.encode(x))
        p.append(psnr(y, x))
        s.append(ssim(y, x))
    summary = {
        "psnr_db": sum(p) / len(p),
        "ssim": sum(s) / len(s),
        "latent_scale": scale,
        "latent_shift": shift,
        "eval_clips": eval_batches * tc.batch_size,
        "frames": tc.eval_frames,
        "size": f"{tc.width}x{tc.height}",
    }
    atomic_save(
        {"kind": "vae-final", "config": model.cfg.to_dict(), "model": model.state_dict()},
        out / "vae_final.pt",
    )
    write_text_atomic(out / "vae_eval.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _shape_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields that decide the weights' shapes (not the latent scale)."""
    return {k: v for k, v in config.items() if k not in ("scale", "shift", "kl_weight")}


def load_vae(path: Path) -> VideoVAE:
    state = load_checkpoint(path)
    if state["kind"] not in ("vae-final", "vae"):
        raise UsageError(f"{path} is a {state['kind']} checkpoint, not a VAE")
    model = VideoVAE(VAEConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval()
