"""Pieces shared by the VAE and DiT training loops: checkpoints, schedules, EMA, logs, plots.

Checkpoints are written to a temporary name and renamed into place, so a crash (or a NaN stop)
always leaves the last good one readable. Everything random in a step is drawn from a generator
seeded by (seed, step), so ``--resume`` needs no saved RNG state and replays the same numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fivefold._common.errors import FivefoldError, UsageError
from fivefold._common.files import atomic_path
from fivefold._common.progress import progress_bar


class NaNLossError(FivefoldError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


def atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise FivefoldError(f"checkpoint {path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise FivefoldError(f"{path} is not a fivefold.video checkpoint")
    return data


def check_config(path: Path, kind: str, saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose config differs from the one asked for, naming the fields."""
    diffs = [
        f"{key}={saved.get(key)!r} (asked {wanted.get(key)!r})"
        for key in sorted(set(saved) | set(wanted))
        if _norm(saved.get(key)) != _norm(wanted.get(key))
    ]
    if diffs:
        raise UsageError(f"checkpoint {path} is a {kind} of another config: " + ", ".join(diffs))


def run_fields(config: Any, later: Collection[str]) -> dict[str, Any]:
    """A run config as a checkpoint records it (and as --resume compares it): the fields named in
    ``later`` were added after runs had been saved, so each is recorded only when it differs from
    the dataclass default; older checkpoints then resume unchanged and default runs save the same
    fields as before."""
    record: dict[str, Any] = dataclasses.asdict(config)
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for key in later:
        if record[key] == defaults[key]:
            del record[key]
    return record


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator for one step: the same numbers whether or not the run was resumed."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1))
    return g


def lr_at(step: int, base: float, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio * base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.shadow = {k: v.clone().float() for k, v in state.items()}


class CSVLog:
    """step,loss,lr,... rows; on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, fields: list[str], resume_step: int | None) -> None:
        self.path = path
        self.fields = fields
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with path.open() as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) < resume_step]
        with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: Mapping[str, float | int]) -> None:
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields).writerow({k: row[k] for k in self.fields})


def plot_csv(csv_path: Path, png_path: Path, key: str = "loss") -> None:
    """A small line plot of ``key`` against step (log scale), drawn with Pillow."""
    from PIL import Image, ImageDraw

    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    points = [(int(r["step"]), float(r[key])) for r in rows if float(r[key]) > 0]
    w, h, pad = 640, 360, 48
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([pad, pad // 2, w - pad // 2, h - pad], outline="black")
    draw.text((pad, 4), f"{key} (log scale) vs step", fill="black")
    if len(points) >= 2:
        s0, s1 = points[0][0], max(points[-1][0], points[0][0] + 1)
        lv = [math.log10(v) for _, v in points]
        lo, hi = min(lv), max(max(lv), min(lv) + 1e-6)

        def xy(step: int, value: float) -> tuple[float, float]:
            x = pad + (step - s0) / (s1 - s0) * (w - 1.5 * pad)
            y = (h - pad) - (math.log10(value) - lo) / (hi - lo) * (h - 1.5 * pad)
            return x, y

        draw.line([xy(s, v) for s, v in points], fill=(30, 80, 200), width=1)
        draw.text((4, pad // 2), f"{10**hi:.3g}", fill="black")
        draw.text((4, h - pad - 10), f"{10**lo:.3g}", fill="black")
        draw.text((pad, h - pad + 6), str(s0), fill="black")
        draw.text((w - pad - 20, h - pad + 6), str(s1), fill="black")
    with atomic_path(png_path, suffix=".png") as tmp:
        img.save(tmp)


class Progress:
    """A rich bar (on a TTY) plus a periodic plain line with steps/s and ETA otherwise."""

    def __init__(self, total: int, start: int, label: str, echo_every: int) -> None:
        self.total, self.start, self.label, self.echo_every = total, start, label, echo_every
        self.t0 = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None

    @contextmanager
    def running(self) -> Iterator[Progress]:
        with progress_bar() as bar:
            self._bar = bar
            if bar is not None:
                self._task = bar.add_task(self.label, total=self.total, completed=self.start, rate="")
            yield self

    def rate(self, step: int) -> tuple[float, float]:
        done = step + 1 - self.start
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        sps = done / elapsed
        return sps, (self.total - step - 1) / max(sps, 1e-9)

    def update(self, step: int, loss: float) -> None:
        sps, eta = self.rate(step)
        if self._bar is not None:
            self._bar.update(self._task, completed=step + 1, rate=f"{sps:.2f} steps/s loss {loss:.4f}")
        elif self.echo_every and ((step + 1) % self.echo_every == 0 or step + 1 == self.total):
            print(
                f"{self.label} step {step + 1}/{self.total} loss {loss:.4f} "
                f"{sps:.2f} steps/s ETA {eta / 60:.1f} min",
                flush=True,
            )
