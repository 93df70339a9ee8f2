"""fivefold.video benchmark: speed, memory, cost growth, shipped-model quality, and a reference DiT.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/video.py [--quick]``. Prints the machine, thread
count and every figure; the reference is a facebookresearch/DiT-style block written here (timm-style
attention with an explicit softmax(QK^T)V, separate modulate ops on the adaLN path, Conv2d patch
embedding), trained at the same config as fivefold's DiT. "before" is fivefold's DiT as of commit
``BEFORE`` (read from git, when this is a checkout), so the lean hot path is measured against the
plain one in the same process, interleaved, as CPU time per step (``time.process_time``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import dataclasses
import math
import platform
import resource
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fivefold.video.diffusion import DiffusionConfig, training_pair
from fivefold.video.dit import DiT, DiTConfig, paper_config
from fivefold.video.flops import forward_macs
from fivefold.video.latents import LatentCache
from fivefold.video.train import TrainConfig, global_batch, loss_fn

if TYPE_CHECKING:
    from fivefold.video.sample import Pipeline


# ----------------------------------------------------------------- reference DiT (the "before")
class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        out: Tensor = self.proj(x)
        return out


def ref_modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class RefBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = RefAttention(d, heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.fc1, self.act, self.fc2 = nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(ref_modulate(self.norm1(x), s1, sc1))
        x = x + g2.unsqueeze(1) * self.fc2(self.act(self.fc1(ref_modulate(self.norm2(x), s2, sc2))))
        return x


class RefDiT(nn.Module):
    """DiT's models.py structure for class-conditional 2D latents (learned sigma)."""

    def __init__(self, size: int, p: int, d: int, depth: int, heads: int, classes: int = 1000) -> None:
        super().__init__()
        self.p, self.d = p, d
        self.x_embedder = nn.Conv2d(4, d, p, stride=p)
        self.t_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.y_embedder = nn.Embedding(classes + 1, d)
        self.pos_embed = nn.Parameter(torch.zeros(1, (size // p) ** 2, d), requires_grad=False)
        self.blocks = nn.ModuleList([RefBlock(d, heads) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(d, p * p * 8)
        self.final_adaLN = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        b, _, h, w = x.shape
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        c = self.t_mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1)) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.final_adaLN(c).chunk(2, dim=1)
        x = self.linear(ref_modulate(self.norm_final(x), shift, scale))
        gh, gw = h // self.p, w // self.p
        x = x.reshape(b, gh, gw, self.p, self.p, 8)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(b, 8, gh * self.p, gw * self.p)


BEFORE = "c0e4533"  # the session-1 DiT: view/permute QKV, stacked RoPE, F.gelu, x + gate * branch


def before_dit() -> Any:
    """fivefold.video.dit (and the rope module it used) as of ``BEFORE``, or None outside git."""
    root = Path(__file__).resolve().parents[1]

    def source(path: str) -> str:
        cmd = ["git", "-C", str(root), "show", f"{BEFORE}:src/fivefold/video/{path}"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    try:
        rope_src, dit_src = source("rope.py"), source("dit.py")
    except (OSError, subprocess.CalledProcessError):
        return None
    rope = types.ModuleType("video_rope_before")
    exec(compile(rope_src, "rope_before.py", "exec"), rope.__dict__)
    dit = types.ModuleType("video_dit_before")
    sys.modules[dit.__name__] = dit  # dataclasses look their module up
    current = sys.modules["fivefold.video.rope"]
    sys.modules["fivefold.video.rope"] = rope
    try:
        exec(compile(dit_src, "dit_before.py", "exec"), dit.__dict__)
    finally:
        sys.modules["fivefold.video.rope"] = current
    return dit


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, per_round: int) -> dict[str, float]:
    """CPU seconds per step of each, the best of ``rounds`` interleaved rounds (load on a shared
    machine inflates wall time and hits every contender alike within a round)."""
    for fn in steps.values():
        fn()  # warm-up
    best = {name: math.inf for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            started = time.process_time()
            for _ in range(per_round):
                fn()
            best[name] = min(best[name], (time.process_time() - started) / per_round)
    return best


def _adamw_step(model: nn.Module, forward: Callable[[], Tensor], fused: bool = False) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True if fused else None)

    def step() -> None:
        loss = forward()
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    return step


def before_and_after(
    model: nn.Module, forward_of: Callable[[nn.Module], Callable[[], Tensor]]
) -> dict[str, Callable[[], None]]:
    """Training steps of ``model`` and, where git has it, of the same weights in the ``BEFORE`` code."""
    steps = {}
    old = before_dit()
    if old is not None:
        cfg = model.cfg
        assert dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)
        # to_dict leaves out later fields at their defaults, which the older config does not know
        plain = old.DiT(old.DiTConfig(**cfg.to_dict()))
        plain.load_state_dict(model.state_dict())
        steps["before"] = _adamw_step(plain, forward_of(plain))
    steps["after"] = _adamw_step(model, forward_of(model))
    return steps


def compare_reference(hidden: int, heads: int, batch: int, rounds: int, per_round: int) -> dict[str, float]:
    """CPU seconds per training step, class-conditional with a frozen sin-cos table on both sides
    (the reference has no RoPE or cross-attention): width ``hidden``, depth 4, 16x16x4 latents."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        paper_config("DiT-S/2"), hidden=hidden, heads=heads, depth=4, input_size=(1, 16, 16)
    )
    ours = DiT(cfg)
    fused = DiT(cfg)
    ref = RefDiT(16, 2, cfg.hidden, cfg.depth, cfg.heads)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(batch, 4, 16, 16)
    t = torch.randint(0, 1000, (batch,)).float()
    y = torch.randint(0, 1000, (batch,))
    target = torch.randn(batch, 8, 16, 16)

    def five(model: nn.Module) -> Callable[[], Tensor]:
        return lambda: F.mse_loss(model(x[:, :, None], t, y)[:, :, 0], target)

    steps = {"reference": _adamw_step(ref, lambda: F.mse_loss(ref(x, t, y), target))}
    steps |= before_and_after(ours, five)
    steps["after, fused AdamW"] = _adamw_step(fused, five(fused), fused=True)
    return interleaved(steps, rounds, per_round)


def shipped_train_rate(rounds: int, per_round: int) -> tuple[dict[str, float], DiTConfig, int]:
    """CPU seconds per step of the shipped config (text cross-attention, 3D RoPE, known-frames
    channels) through the training loss, before and after the lean hot path."""
    from fivefold.video.sample import load_pipeline

    pipe = load_pipeline()
    cfg = dataclasses.replace(pipe.dit.cfg)
    tc_meta = pipe.config.get("train_config", {})
    batch = int(tc_meta.get("batch_size", 32))
    g = torch.Generator().manual_seed(0)
    c = cfg.latent_channels
    cache = LatentCache(
        latents=torch.randn(256, c, *cfg.input_size, generator=g),
        caption_ids=torch.randint(1, 8, (256,), generator=g),
        tokens=torch.randn(8, 24, 384, generator=g).half(),
        token_mask=torch.ones(8, 24, dtype=torch.bool),
        pooled=torch.randn(8, 384, generator=g),
        null_id=0,
        meta={},
    )
    tc = TrainConfig(batch_size=batch, image_every=0)

    def loss_of(model: nn.Module) -> Callable[[], Tensor]:
        counter = {"s": 0}

        def forward() -> Tensor:
            batch_, gen = global_batch(cache, tc, counter["s"])
            counter["s"] += 1
            loss: Tensor = loss_fn(model, cache, DiffusionConfig(), batch_, gen, slice(0, batch))
            return loss

        return forward

    torch.manual_seed(0)
    steps = before_and_after(DiT(cfg), loss_of)
    _ = training_pair
    return interleaved(steps, rounds, per_round), cfg, batch


def sample_costs(pipe: object, sizes: list[tuple[int, int, int]], steps: int) -> list[dict[str, float]]:
    from fivefold.video.sample import generate

    rows = []
    for frames, h, w in sizes:
        lt, lh, lw = pipe.latent_size(frames, h, w)  # type: ignore[attr-defined]
        cfgd = pipe.dit.cfg  # type: ignore[attr-defined]
        tokens = lt * lh * lw // (cfgd.patch[0] * cfgd.patch[1] * cfgd.patch[2])
        started = time.perf_counter()
        generate(pipe, ["a red circle moving left"], frames, h, w, steps=steps, cfg=4.0)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        rows.append(
            {
                "frames": frames,
                "size": f"{w}x{h}",
                "tokens": tokens,
                "gflops_per_eval": 2 * forward_macs(cfgd, (lt, lh, lw)) / 1e9 / 2,
                "s_per_clip": seconds,
            }
        )
    return rows


def judge_accuracy(
    pipe: Pipeline, seeds: int, steps: int, *, factorized: bool, held_out: bool = True
) -> dict[str, float] | None:
    """Judge accuracy of the canonical prompts of the held-out combinations (or of as many seen
    ones, every 7th), ``seeds`` clips each."""
    try:
        from fivefold.video.data import ALL_COMBOS, HELD_OUT_COMBOS, canonical_caption
        from fivefold.video.evaluate import attribute_accuracy
        from fivefold.video.judge import HEADS, load_judge
    except ImportError:
        return None
    from fivefold.video.sample import generate

    judge = load_judge()
    combos = sorted(HELD_OUT_COMBOS) if held_out else sorted(set(ALL_COMBOS) - HELD_OUT_COMBOS)[::7]
    prompts = [canonical_caption(c) for c in combos]
    predictions: list[dict[str, str]] = []
    for s in range(seeds):
        videos = generate(
            pipe, prompts, 9, 32, 32, steps=steps, cfg=4.0, seed=1000 * s, factorized=factorized
        )
        predictions += judge.predict(videos)
    targets = [dict(zip(HEADS, combo, strict=True)) for combo in combos] * seeds
    scores: dict[str, float] = attribute_accuracy(predictions, targets)
    return scores | {"clips": float(len(targets))}


def caption_sensitivity(pipe: Any, clips: int = 96) -> dict[float, dict[str, float]]:
    """The DiT's loss on the later latent frames of real clips (first frame known) with the true
    caption, with the direction swapped and with the colour swapped, at high noise: how much the
    model reads each attribute from the text. Equal losses mean the words are ignored."""
    from fivefold.video.data import (
        ALL_COMBOS,
        HELD_OUT_COMBOS,
        canonical_caption,
        render_clip,
        spec_from_attrs,
        to_tensor,
    )

    rng = np.random.default_rng(1)
    seen = [c for c in ALL_COMBOS if c not in HELD_OUT_COMBOS]
    combos = [seen[int(i)] for i in rng.integers(len(seen), size=clips)]
    attrs = [{"shape": c[0], "color": c[1], "direction": c[2]} for c in combos]
    video = torch.stack([to_tensor(render_clip(spec_from_attrs(a, rng), 9, 32, 32)) for a in attrs])
    x0 = pipe.encode_video(video)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    known = torch.zeros(clips, x0.shape[2], dtype=torch.bool)
    known[:, 0] = True
    flip = {"left": "right", "right": "left", "up": "down", "down": "up"}
    other = {"red": "blue", "blue": "red", "green": "yellow", "yellow": "green"}
    captions = {
        "true": combos,
        "direction swapped": [(c[0], c[1], flip[c[2]]) for c in combos],
        "colour swapped": [(c[0], other[c[1]], c[2]) for c in combos],
    }
    out: dict[float, dict[str, float]] = {}
    with torch.no_grad():
        for t in (0.9, 1.0):
            xt = (1 - t) * x0 + t * noise
            out[t] = {}
            for name, chosen in captions.items():
                text = pipe.text.encode([canonical_caption(c) for c in chosen])
                pred = pipe.dit(
                    xt,
                    torch.full((clips,), t * 1000.0),
                    text.tokens,
                    y_mask=text.mask,
                    y_pooled=text.pooled,
                    known=x0,
                    known_mask=known,
                )[:, : x0.shape[1]]
                out[t][name] = float(((pred - (noise - x0))[:, :, 1:] ** 2).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and seeds")
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{threads} thread(s)"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    rounds, per_round = (2, 2) if args.quick else (4, 3)
    print("\n== training throughput at equal config (CPU s/step, best of interleaved rounds) ==")
    print("both class-conditional with a frozen sin-cos table, depth 4, 16x16x4 latents, patch 2 (64 tokens)")
    for hidden, heads, batch in ((384, 6, 16), (128, 4, 32)):
        rates = compare_reference(hidden, heads, batch, rounds, per_round)
        ref = rates["reference"]
        label = "DiT-S/2 width" if hidden == 384 else "shipped width"
        print(f"-- {label}: hidden {hidden}, {heads} heads, batch {batch}")
        for name, seconds in rates.items():
            print(f"{name:>20}: {seconds:.3f} s/step  ({ref / seconds:.2f}x the reference)")
        if "before" in rates:
            print(f"{'after vs before':>20}: {rates['before'] / rates['after']:.2f}x")

    from fivefold.video.sample import generate, load_pipeline

    shipped, cfg, batch = shipped_train_rate(rounds, per_round)
    print(
        f"\n== shipped config: hidden {cfg.hidden}, depth {cfg.depth}, patch {cfg.patch}, "
        f"latent {cfg.input_size} =="
    )
    for name, seconds in shipped.items():
        print(f"train ({name}): {1 / seconds:.2f} steps/s at batch {batch} (CPU {seconds:.3f} s/step)")
    if "before" in shipped:
        print(f"train after vs before: {shipped['before'] / shipped['after']:.2f}x")
    pipe = load_pipeline()
    generate(pipe, ["a red circle moving left"], 9, 32, 32, steps=2)  # warm-up
    started = time.perf_counter()
    generate(pipe, ["a red circle moving left"], 9, 32, 32, steps=25, cfg=4.0)
    print(f"sample: {time.perf_counter() - started:.2f} s per clip (9x32x32, 25 Euler steps, CFG 4)")

    print("\n== cost vs frames and resolution (one clip, 10 steps, CFG) ==")
    print(f"{'frames':>6} {'size':>7} {'tokens':>6} {'Gflops/eval':>11} {'s/clip':>7}")
    sizes = [(9, 32, 32), (17, 32, 32), (33, 32, 32), (9, 64, 64), (17, 64, 64)]
    if args.quick:
        sizes = sizes[:3]
    for row in sample_costs(pipe, sizes, 10):
        print(
            f"{row['frames']:>6} {row['size']:>7} {row['tokens']:>6} {row['gflops_per_eval']:>11.3f} "
            f"{row['s_per_clip']:>7.2f}"
        )

    print("\n== does the DiT read the caption? loss on frames 1+ of real clips, first frame known ==")
    for t, losses in caption_sensitivity(pipe).items():
        parts = ", ".join(f"{name} {value:.3f}" for name, value in losses.items())
        ratio = losses["direction swapped"] / losses["true"]
        print(f"t={t:.1f}: {parts} (direction swapped / true: {ratio:.2f}x)")

    shift = pipe.sample_shift
    print(f"\n== shipped model: judge accuracy of generated clips (25 steps, CFG 4, shift {shift:g}) ==")
    print("factorized: image first, then the clip from it (the packed default); joint: all frames at once")
    for held_out in (True, False):
        for factorized in (True, False):
            acc = judge_accuracy(pipe, 1 if args.quick else 16, 25, factorized=factorized, held_out=held_out)
            if acc is None:
                break
            which, how = "unseen" if held_out else "seen", "factorized" if factorized else "joint"
            print(
                f"{which:>6} combinations, {how:>10}: "
                f"clips {int(acc['clips'])}: shape {acc['shape']:.0%}, colour {acc['color']:.0%}, "
                f"direction {acc['direction']:.0%}, all three {acc['all']:.0%}"
            )
    vae_eval = pipe.config.get("vae_eval")
    if vae_eval:
        v = pipe.vae.cfg
        factors = f"{v.temporal_factor}x{v.spatial_factor}x{v.spatial_factor}"
        print(
            f"\nVAE ({factors}, {v.latent_channels} latent channels) held-out PSNR "
            f"{vae_eval['psnr_db']:.2f} dB, SSIM {vae_eval['ssim']:.3f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
