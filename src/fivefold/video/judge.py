"""The judge: a small 3D-conv classifier that reads shape, colour and direction off a clip.

It is the yardstick for generated video (``evaluate.py``) and is trained only on real synthetic clips,
so it cannot share a generator's mistakes. Any clip size and length is first resampled to the judge's
input (8 frames of 32x32: spatially with anti-aliasing, temporally linearly, so the first and last frames
are kept); training draws clips at random sizes, aspect ratios and lengths through the same resampling,
with noise, blur and colour jitter so that slightly imperfect generated clips are still read correctly.

The shipped weights (``assets/judge.pt``, under 1 MB) come from ``fivefold video judge-train`` with its
defaults, i.e. ``train_judge(Path("src/fivefold/video/assets/judge.pt"))``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fivefold._common.errors import FivefoldError
from fivefold._common.files import atomic_path
from fivefold.video.data import ALL_COMBOS, ATTRIBUTES, random_spec, render_clip, to_tensor

HEADS: tuple[str, ...] = ("shape", "color", "direction")
DEFAULT_PATH = Path(__file__).resolve().parent / "assets" / "judge.pt"


@dataclass(frozen=True)
class JudgeConfig:
    frames: int = 8
    size: int = 32
    width: int = 16
    features: int = 128


def prepare(video: torch.Tensor, frames: int = 8, size: int = 32) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1], any T/H/W -> (B, 3, frames, size, size)."""
    if video.dim() == 4:
        video = video.unsqueeze(0)
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, T, H, W) video, got {tuple(video.shape)}")
    b, c, t, h, w = video.shape
    video = video.float()
    if (h, w) != (size, size):
        flat = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        flat = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        video = flat.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)
    if t != frames:
        if t == 1:
            video = video.expand(-1, -1, frames, -1, -1)
        else:
            video = F.interpolate(video, size=(frames, size, size), mode="trilinear", align_corners=True)
    return video.contiguous()


class JudgeNet(nn.Module):
    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        w = config.width

        def block(cin: int, cout: int, stride: tuple[int, int, int]) -> list[nn.Module]:
            return [nn.Conv3d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]

        # Halve space at once (a 32x32 input carries little at pixel scale) but keep every frame until
        # motion has been seen by two temporal kernels.
        self.body = nn.Sequential(
            *block(3, w, (1, 2, 2)),
            *block(w, 2 * w, (1, 1, 1)),
            *block(2 * w, 4 * w, (2, 2, 2)),
            *block(4 * w, 4 * w, (2, 2, 2)),
        )
        self.project = nn.Sequential(nn.Linear(8 * w, config.features), nn.SiLU())
        self.heads = nn.ModuleDict({k: nn.Linear(config.features, len(ATTRIBUTES[k])) for k in HEADS})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last_3d selects the oneDNN convolution, several times faster than the default on CPU.
        h = self.body(x.contiguous(memory_format=torch.channels_last_3d))
        # Mean and max over space-time: the mean reads colour, the max keeps a small object's evidence.
        pooled = torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], dim=1)
        out: torch.Tensor = self.project(pooled)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


class Judge:
    """Reads (shape, color, direction) from videos in [-1, 1] of any size and length."""

    def __init__(self, net: JudgeNet, config: JudgeConfig, meta: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.config = config
        self.meta = meta or {}

    def _input(self, video: torch.Tensor) -> torch.Tensor:
        return prepare(video, self.config.frames, self.config.size)

    @torch.no_grad()
    def logits(self, video: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in HEADS}
        for chunk in torch.split(video, batch_size):
            out = self.net(self._input(chunk))
            for k in HEADS:
                parts[k].append(out[k])
        return {k: torch.cat(v) for k, v in parts.items()}

    def probabilities(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.softmax(-1) for k, v in self.logits(video).items()}

    def predict(self, video: torch.Tensor) -> list[dict[str, str]]:
        """One ``{"shape", "color", "direction"}`` dict per clip."""
        logits = self.logits(video)
        indices = {k: v.argmax(-1).tolist() for k, v in logits.items()}
        return [{k: ATTRIBUTES[k][indices[k][i]] for k in HEADS} for i in range(video.shape[0])]

    @torch.no_grad()
    def features(self, video: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(B, D) penultimate features, for Frechet distances."""
        return torch.cat([self.net.features(self._input(c)) for c in torch.split(video, batch_size)])


def load_judge(path: str | Path | None = None) -> Judge:
    """The shipped judge, or one written by :func:`train_judge`."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise FivefoldError(f"judge weights {path} not found; train them with `fivefold video judge-train`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        config = JudgeConfig(**blob["config"])
        net = JudgeNet(config)
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:  # torch.load and load_state_dict raise many types for a wrong file
        raise FivefoldError(f"{path} is not a judge checkpoint: {type(exc).__name__}") from exc
    return Judge(net, config, blob.get("meta", {}))


# ---------------------------------------------------------------- training


@dataclass
class _Batch:
    video: torch.Tensor
    labels: dict[str, torch.Tensor] = field(default_factory=dict)


def _random_clip(rng: np.random.Generator, combos: Sequence[tuple[str, str, str]]) -> tuple[np.ndarray, Any]:
    spec = random_spec(rng, only=combos)
    frames = int(rng.integers(4, 18))
    short = int(rng.integers(20, 56))
    aspect = float(np.exp(rng.uniform(-0.45, 0.45)))
    h, w = (
        (short, max(short, round(short * aspect)))
        if aspect >= 1
        else (max(short, round(short / aspect)), short)
    )
    return render_clip(spec, frames, h, w), spec


def _augment(video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Imperfections generated clips show: noise, blur, colour and brightness shifts, frame jitter."""
    b = video.shape[0]
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    gain = 1.0 + 0.15 * (torch.rand(b, 3, 1, 1, 1, generator=gen) - 0.5)
    shift = 0.12 * (torch.rand(b, 3, 1, 1, 1, generator=gen) - 0.5)
    video = video * gain + shift
    blur = torch.rand(b, generator=gen) < 0.4
    if blur.any():
        flat = video[blur].permute(0, 2, 1, 3, 4)
        n, t, c, h, w = flat.shape
        smooth = F.avg_pool2d(flat.reshape(n * t, c, h, w), 3, stride=1, padding=1, count_include_pad=False)
        video[blur] = smooth.reshape(n, t, c, h, w).permute(0, 2, 1, 3, 4)
    sigma = 0.12 * torch.rand(b, 1, 1, 1, 1, generator=gen)
    video = video + sigma * torch.randn(video.shape, generator=gen)
    flicker = (
        0.05
        * torch.rand(b, 1, 1, 1, 1, generator=gen)
        * torch.randn(b, 1, video.shape[2], 1, 1, generator=gen)
    )
    return (video + flicker).clamp(-1, 1)


def make_batch(
    rng: np.random.Generator,
    batch_size: int,
    config: JudgeConfig,
    combos: Sequence[tuple[str, str, str]] = ALL_COMBOS,
    augment: bool = True,
) -> _Batch:
    """Random clips at random sizes, aspect ratios and lengths, resampled to the judge's input."""
    videos: list[torch.Tensor] = []
    labels: dict[str, list[int]] = {k: [] for k in HEADS}
    for _ in range(batch_size):
        clip, spec = _random_clip(rng, combos)
        videos.append(prepare(to_tensor(clip), config.frames, config.size))
        for k in HEADS:
            labels[k].append(ATTRIBUTES[k].index(getattr(spec, k)))
    video = torch.cat(videos)
    if augment:
        video = _augment(video, rng)
    return _Batch(video, {k: torch.tensor(v) for k, v in labels.items()})


def accuracy(judge: Judge, batch: _Batch) -> dict[str, float]:
    logits = judge.logits(batch.video)
    hits = {k: logits[k].argmax(-1) == batch.labels[k] for k in HEADS}
    result = {k: float(v.float().mean()) for k, v in hits.items()}
    result["all"] = float(torch.stack(list(hits.values())).all(0).float().mean())
    return result


def train_judge(
    out: str | Path = DEFAULT_PATH,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    eval_size: int = 600,
    config: JudgeConfig | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the judge on fresh synthetic clips (all combinations) and save it atomically to ``out``.

    Returns the held-out accuracies (clips from another seed, with and without augmentation)."""
    config = config or JudgeConfig()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    net = JudgeNet(config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    started = time.perf_counter()
    for step in range(steps):
        net.train()
        batch = make_batch(rng, batch_size, config)
        out_logits = net(batch.video)
        loss = torch.stack(
            [F.cross_entropy(out_logits[k], batch.labels[k], label_smoothing=0.05) for k in HEADS]
        ).sum()
        optimiser.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimiser.step()
        scheduler.step()
        if log and (step % 50 == 0 or step == steps - 1):
            log(
                f"judge step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f}s)"
            )
    judge = Judge(net, config)
    held_rng = np.random.default_rng([seed + 10_000, 2])
    clean = accuracy(judge, make_batch(held_rng, eval_size, config, augment=False))
    noisy = accuracy(judge, make_batch(held_rng, eval_size, config, augment=True))
    meta = {
        "held_out_accuracy": clean,
        "held_out_accuracy_augmented": noisy,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - started, 1),
        "command": f"fivefold video judge-train --steps {steps} --batch-size {batch_size} --seed {seed}",
    }
    judge.meta = meta
    save_judge(judge, out)
    return meta


def save_judge(judge: Judge, out: str | Path) -> Path:
    out = Path(out)
    state = {k: v.detach().clone() for k, v in judge.net.state_dict().items()}
    blob = {"config": asdict(judge.config), "state_dict": state, "meta": judge.meta}
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save(blob, tmp)
    return out
