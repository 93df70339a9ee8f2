"""`fivefold video`: the command-line shell over `fivefold.video`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fivefold._common.errors import UsageError


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def parse_size(value: str) -> tuple[int, int]:
    """'WxH' -> (width, height)."""
    try:
        w, h = value.lower().split("x")
        width, height = int(w), int(h)
    except ValueError:
        raise UsageError(f"--size must look like 32x32 (WIDTHxHEIGHT), got {value!r}") from None
    if width < 1 or height < 1:
        raise UsageError(f"--size must be positive, got {value!r}")
    return width, height


@click.group(name="video")
def cli() -> None:
    """Text-to-video latent diffusion transformer: train, sample, evaluate."""


@cli.command("vae-train")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory.")
@click.option("--steps", type=int, default=1200, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--frames", type=int, default=5, show_default=True, help="Training clip length.")
@click.option("--size", default="32x32", show_default=True, help="WIDTHxHEIGHT.")
@click.option("--latent-channels", type=int, default=8, show_default=True)
@click.option("--spatial", type=click.Choice(["4", "8"]), default="4", show_default=True)
@click.option("--temporal", type=click.Choice(["1", "2", "4"]), default="4", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")
@click.option("--stop-after", type=int, default=None, help="Leave (and finalise) after this many steps.")
@click.option("--init", type=click.Path(path_type=Path), default=None, help="Start from this VAE's weights.")
@click.option("--decoder-only", is_flag=True, help="Train only the decoder (keeps latents valid).")
@click.option(
    "--edge-weight", type=float, default=0.0, show_default=True, help="Gradient-difference loss weight."
)
@click.option("--json", "as_json", is_flag=True)
def vae_train_cmd(
    out: Path,
    steps: int,
    batch: int,
    lr: float,
    frames: int,
    size: str,
    latent_channels: int,
    spatial: str,
    temporal: str,
    seed: int,
    threads: int,
    resume: bool,
    stop_after: int | None,
    init: Path | None,
    decoder_only: bool,
    edge_weight: float,
    as_json: bool,
) -> None:
    """Train the causal video VAE on synthetic moving shapes; report PSNR/SSIM."""
    from fivefold._common.jsonout import emit
    from fivefold.video.vae import VAEConfig
    from fivefold.video.vae_train import VAETrainConfig, train_vae

    _threads(threads)
    width, height = parse_size(size)
    channels = (16, 32, 64) if spatial == "4" else (16, 32, 64, 64)
    cfg = VAEConfig(
        latent_channels=latent_channels,
        spatial_factor=int(spatial),
        temporal_factor=int(temporal),
        channels=channels,
    )
    tc = VAETrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        frames=frames,
        height=height,
        width=width,
        seed=seed,
        decoder_only=decoder_only,
        edge_weight=edge_weight,
    )
    summary = train_vae(
        out, cfg, tc, resume=resume, stop_after=stop_after, echo_every=0 if as_json else 50, init=init
    )
    if as_json:
        emit(summary)
    else:
        click.echo(
            f"VAE: PSNR {summary['psnr_db']:.2f} dB, SSIM {summary['ssim']:.3f} -> {out / 'vae_final.pt'}"
        )


def parse_buckets(value: str) -> list[tuple[int, int, int]]:
    """'9x32x32,1x32x48' -> [(frames, height, width), ...]."""
    buckets = []
    for part in value.split(","):
        try:
            f, h, w = (int(v) for v in part.strip().lower().split("x"))
        except ValueError:
            raise UsageError(
                f"--buckets must look like 9x32x32,1x32x48 (FRAMESxHEIGHTxWIDTH), got {part!r}"
            ) from None
        buckets.append((f, h, w))
    if len(set(buckets)) != len(buckets):
        raise UsageError(f"--buckets names a size twice: {value!r}")
    return buckets


@cli.command("train")
@click.option("--vae", "vae_path", type=click.Path(path_type=Path), required=True, help="vae_final.pt")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory.")
@click.option(
    "--cache", type=click.Path(path_type=Path), default=None, help="Latent cache (built if absent)."
)
@click.option("--clips", type=int, default=8000, show_default=True, help="Clips in a new cache.")
@click.option(
    "--text-cache", type=click.Path(path_type=Path), default=None, help="Prompt-embedding cache file."
)
@click.option("--frames", type=int, default=9, show_default=True)
@click.option("--size", default="32x32", show_default=True)
@click.option(
    "--buckets",
    default=None,
    help="Train on several clip sizes, FRAMESxHEIGHTxWIDTH,... (e.g. 9x32x32,9x32x48,1x32x32; "
    "1 frame = images): one latent cache per size, each step's batch from one size drawn per "
    "(seed, step). Replaces --frames/--size.",
)
@click.option("--hidden", type=int, default=128, show_default=True)
@click.option("--depth", type=int, default=4, show_default=True)
@click.option("--heads", type=int, default=4, show_default=True)
@click.option("--patch", default="1x2x2", show_default=True, help="pt x ph x pw")
@click.option("--attention", type=click.Choice(["full", "split"]), default="full", show_default=True)
@click.option("--objective", type=click.Choice(["rf", "ddpm"]), default="rf", show_default=True)
@click.option(
    "--logit-mean",
    type=float,
    default=0.0,
    show_default=True,
    help="Centre of rectified flow's logit-normal t; > 0 trains more at high noise (layout, motion).",
)
@click.option("--steps", type=int, default=3000, show_default=True)
@click.option("--batch", "batch_size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--ema", "ema_decay", type=float, default=0.995, show_default=True, help="EMA decay.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--ckpt-every", type=int, default=100, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")
@click.option("--stop-after", type=int, default=None, help="Leave after this many steps of this run.")
@click.option("--compile", "compile", is_flag=True, help="torch.compile the model.")
@click.option("--grad-checkpoint", is_flag=True, help="Activation checkpointing.")
@click.option("--bf16", is_flag=True, help="bf16 autocast (CUDA only).")
@click.option("--fused-adamw", is_flag=True, help="One fused AdamW kernel (faster on CPU; rounding differs).")
@click.option(
    "--init", "init_path", type=click.Path(path_type=Path), default=None, help="A DiT run to start from."
)
@click.option(
    "--deepen",
    is_flag=True,
    help="With --init: --depth may exceed the init's; new blocks start as the identity.",
)
@click.option(
    "--repatch",
    is_flag=True,
    help="With --init: --patch may split the init's patch height and width (e.g. 1x2x2 -> 1x1x1).",
)
@click.option(
    "--mask-prob", type=float, default=0.5, show_default=True, help="Share of examples with known frames."
)
@click.option(
    "--image-every", type=int, default=8, show_default=True, help="Every n-th step trains images; 0: never."
)
@click.option(
    "--mask-weights",
    default="1,1,1,1",
    show_default=True,
    help="Relative odds of the known-frame modes first,last,first+last,span.",
)
@click.option(
    "--object-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Extra loss weight on the object's latent pixels (1 + W at the farthest from the background).",
)
def train_cmd(**opts: Any) -> None:
    """Train the DiT on VAE latents of synthetic clips (held-out combinations excluded).

    Under torchrun (WORLD_SIZE > 1) it runs DistributedDataParallel (gloo on CPU)."""
    import dataclasses

    import torch

    from fivefold.video.diffusion import DiffusionConfig
    from fivefold.video.dit import DiTConfig
    from fivefold.video.train import TrainConfig, init_distributed, train
    from fivefold.video.trainloop import load_checkpoint
    from fivefold.video.vae_train import load_vae

    # options named after TrainConfig fields go to it as they are
    opts["mask_weights"] = _mask_weights(opts["mask_weights"])
    if opts["image_every"] < 0:
        raise UsageError(f"--image-every must be >= 0, got {opts['image_every']}")
    if not 0.0 <= opts["mask_prob"] <= 1.0:
        raise UsageError(f"--mask-prob must be in [0, 1], got {opts['mask_prob']}")
    if not opts["object_weight"] >= 0.0:
        raise UsageError(f"--object-weight must be >= 0, got {opts['object_weight']}")
    for flag in ("deepen", "repatch"):
        if opts[flag] and opts["init_path"] is None:
            raise UsageError(f"--{flag} needs --init (the model to start from)")
    tc = TrainConfig(**{f.name: opts[f.name] for f in dataclasses.fields(TrainConfig) if f.name in opts})
    _threads(opts["threads"])
    parse_size(opts["size"])
    try:
        p = tuple(int(v) for v in opts["patch"].lower().split("x"))
        assert len(p) == 3
    except (ValueError, AssertionError):
        raise UsageError(f"--patch must look like 1x2x2, got {opts['patch']!r}") from None
    patch = (p[0], p[1], p[2])
    init_distributed()
    vae = load_vae(opts["vae_path"])
    out: Path = opts["out"]
    lc = _latent_caches(vae, opts, out, patch)
    first = lc[0] if isinstance(lc, list) else lc  # sets input_size, which only sincos uses
    mc = DiTConfig(
        hidden=opts["hidden"],
        depth=opts["depth"],
        heads=opts["heads"],
        patch=patch,
        latent_channels=vae.cfg.latent_channels,
        attention=opts["attention"],
        input_size=tuple(first.latents.shape[2:]),  # type: ignore[arg-type]
        grad_checkpoint=opts["grad_checkpoint"],
    )
    vae_blob = load_checkpoint(opts["vae_path"])
    result = train(
        out,
        lc,
        mc,
        tc,
        vae_state={"config": vae_blob["config"], "model": vae_blob["model"]},
        dc=DiffusionConfig(objective=opts["objective"], logit_mean=opts["logit_mean"]),
        resume=opts["resume"],
        stop_after=opts["stop_after"],
        echo_every=25,
        init=opts["init_path"],
        deepen_init=opts["deepen"],
        repatch_init=opts["repatch"],
    )
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        click.echo(
            f"trained to step {result['steps']} ({result['steps_per_s']:.2f} steps/s)"
            f" -> {result['checkpoint']}"
        )


def _mask_weights(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(0 <= v < float("inf") for v in values) or sum(values) <= 0:
        raise UsageError(f"--mask-weights must be four non-negative numbers like 4,1,1,1, got {text!r}")
    return (values[0], values[1], values[2], values[3])


def _latent_caches(vae: Any, opts: dict[str, Any], out: Path, patch: tuple[int, int, int]) -> Any:
    """The cache file named by --cache (default OUT/latents.pt), built and saved if absent: one
    LatentCache, or with --buckets a list of them (one per size)."""
    from fivefold.video.latents import (
        LatentCache,
        build_bucket_caches,
        build_cache,
        check_cache_vae,
        load_buckets,
        save_buckets,
    )
    from fivefold.video.patches import check_pixel_size
    from fivefold.video.text import TextEncoder

    cache_path: Path = opts["cache"] or out / "latents.pt"
    if opts["buckets"] is None:
        if cache_path.is_file():
            lc = LatentCache.load(cache_path)
            check_cache_vae(cache_path, [lc], vae)
            return lc
        width, height = parse_size(opts["size"])
        encoder = TextEncoder(opts["text_cache"])
        lc = build_cache(
            vae,
            encoder,
            clips=opts["clips"],
            frames=opts["frames"],
            height=height,
            width=width,
            seed=opts["seed"],
            echo=True,
        )
        lc.save(cache_path)
        encoder.save()
        return lc
    buckets = parse_buckets(opts["buckets"])
    for f, h, w in buckets:
        try:
            check_pixel_size(
                f, h, w, temporal=vae.cfg.temporal_factor, spatial=vae.cfg.spatial_factor, patch=patch
            )
        except UsageError as exc:
            raise UsageError(f"--buckets {f}x{h}x{w}: {exc}") from None
    if cache_path.is_file():
        caches = load_buckets(cache_path, buckets)
        check_cache_vae(cache_path, caches, vae)
        return caches
    encoder = TextEncoder(opts["text_cache"])
    caches = build_bucket_caches(
        vae, encoder, clips=opts["clips"], buckets=buckets, seed=opts["seed"], echo=True
    )
    save_buckets(cache_path, caches, buckets)
    encoder.save()
    return caches


@cli.command("sample")
@click.option("--prompt", "prompts", multiple=True, required=True, help="Repeat for several clips.")
@click.option("--frames", type=int, default=9, show_default=True)
@click.option("--size", default="32x32", show_default=True, help="WIDTHxHEIGHT.")
@click.option("--steps", type=int, default=25, show_default=True)
@click.option("--cfg", "guidance", type=float, default=4.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sampler", type=click.Choice(["euler", "heun"]), default="euler", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="clip.mp4 | clip.gif (| .png with --grid)"
)
@click.option("--grid", type=int, default=0, help="Also write a PNG grid of this many seeds per prompt.")
@click.option(
    "--checkpoint", type=click.Path(path_type=Path), default=None, help="Default: the shipped model."
)
@click.option(
    "--upscale", type=int, default=4, show_default=True, help="Nearest-neighbour zoom of the output."
)
@click.option(
    "--factorized/--joint",
    default=None,
    help="Image first, then the clip from it; or all frames at once. Default: the checkpoint's.",
)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def sample_cmd(
    prompts: tuple[str, ...],
    frames: int,
    size: str,
    steps: int,
    guidance: float,
    seed: int,
    sampler: str,
    out: Path,
    grid: int,
    checkpoint: Path | None,
    upscale: int,
    factorized: bool | None,
    threads: int,
    as_json: bool,
) -> None:
    """Generate a clip from a prompt with the shipped (or a given) model."""
    import time

    import torch

    from fivefold._common.jsonout import emit
    from fivefold.video.media import save_grid, save_video
    from fivefold.video.sample import generate, load_pipeline

    _threads(threads)
    width, height = parse_size(size)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise UsageError(f"--out must end in .gif or .mp4, got {out.name}")
    pipe = load_pipeline(checkpoint)
    started = time.perf_counter()

    def clips(clip_seed: int) -> torch.Tensor:
        return generate(
            pipe,
            list(prompts),
            frames,
            height,
            width,
            steps=steps,
            cfg=guidance,
            seed=clip_seed,
            method=sampler,  # type: ignore[arg-type]
            factorized=factorized,
        )

    videos = clips(seed)
    written = [str(save_video(out, videos, upscale=upscale))]
    if grid:
        rows = [clips(seed + 1000 * k) for k in range(grid)]
        written.append(str(save_grid(out.with_suffix(".png"), torch.cat(rows), upscale=upscale)))
    elapsed = time.perf_counter() - started
    if as_json:
        emit({"outputs": written, "seconds": round(elapsed, 2), "prompts": list(prompts)})
    else:
        for path in written:
            click.echo(path)
        click.echo(f"sampled {len(prompts)} clip(s) in {elapsed:.1f} s")


@cli.command("flops")
@click.argument("config")
@click.option("--frames", type=int, default=None, help="Latent frames (default: the config's input size).")
@click.option("--size", default=None, help="Latent WIDTHxHEIGHT (default 32x32).")
@click.option("--json", "as_json", is_flag=True)
def flops_cmd(config: str, frames: int | None, size: str | None, as_json: bool) -> None:
    """Parameters and Gflops (MACs) of DiT-S/B/L/XL with patch 2/4/8; the paper's setting by default."""
    from fivefold._common.jsonout import emit
    from fivefold.video.dit import paper_config
    from fivefold.video.flops import report

    cfg = paper_config(config)
    t, h, w = cfg.input_size
    if size is not None:
        w, h = parse_size(size)
    if frames is not None:
        t = frames
        if t > 1:
            from dataclasses import replace

            cfg = replace(cfg, pos="rope")  # a sincos table is fixed to one size
    rep = report(config, cfg, (t, h, w))
    if as_json:
        data: dict[str, object] = {"params": rep.params, "gflops": round(rep.gflops, 1)}
        if frames is not None or size is not None:
            data.update(tokens=rep.tokens, latent=list(rep.latent))
        emit(data)
    else:
        click.echo(
            f"{config}: {rep.params:,} parameters, {rep.gflops:.2f} Gflops, "
            f"{rep.tokens} tokens at latent {t}x{h}x{w}"
        )


@cli.command("pack")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--text-cache", type=click.Path(path_type=Path), default=None)
@click.option("--vae-eval", type=click.Path(path_type=Path), default=None, help="vae_eval.json to record.")
@click.option("--vae", type=click.Path(path_type=Path), default=None, help="A decoder fine-tune to ship.")
@click.option(
    "--factorized/--joint",
    default=False,
    show_default=True,
    help="Default text-to-video sampling: the image first, then the clip from it; or all frames at once.",
)
@click.option("--shift", type=float, default=1.0, show_default=True, help="Default sampling time shift.")
def pack_cmd(
    checkpoint: Path,
    out: Path,
    text_cache: Path | None,
    vae_eval: Path | None,
    vae: Path | None,
    factorized: bool,
    shift: float,
) -> None:
    """Turn a training checkpoint into a small sampling checkpoint (EMA weights, fp16).

    From --text-cache it keeps the embeddings of the null prompt and of the plain prompt of every
    (shape, colour, direction) combination, so those prompts sample without loading the encoder."""
    import json

    from fivefold.video.data import ALL_COMBOS, canonical_caption
    from fivefold.video.pack import pack

    if shift <= 0:
        raise UsageError(f"--shift must be > 0, got {shift}")
    meta: dict[str, object] = {"factorized": factorized, "sample_shift": shift}
    if vae_eval is not None:
        meta["vae_eval"] = json.loads(vae_eval.read_text())
    prompts = [canonical_caption(c) for c in ALL_COMBOS]
    size = pack(checkpoint, out, text_cache, meta=meta, prompts=prompts, vae=vae)
    click.echo(f"{out}: {size / 1e6:.1f} MB")


def _register_capabilities() -> None:
    from fivefold.video.cli_capabilities import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_register_capabilities()
