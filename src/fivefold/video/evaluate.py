"""How good are generated clips: attribute accuracy, Frechet distance, temporal consistency.

* Attribute accuracy: the judge reads shape, colour and direction off each generated clip and is
  compared with the prompt's attributes (per attribute and all three at once).
* Frechet distance (FVD-style, in the judge's 128-d features) between real and generated clips.
* Temporal consistency, measured on pixels without the judge: the object's centroid path against the
  best constant-velocity line (RMS residual as a fraction of the shorter side), and flicker: mean
  absolute frame-to-frame change of pixels away from the object (0-255 scale). Real clips score ~0.

The object is found as the pixels far from each frame's background colour (the median of its border),
which holds for the synthetic scenes: one object on a flat background.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fivefold.video.data import (
    ALL_COMBOS,
    HELD_OUT_COMBOS,
    canonical_caption,
    random_spec,
    render_clip,
    spec_from_attrs,
    to_tensor,
)
from fivefold.video.judge import HEADS, Judge

# Distance in [-1, 1] RGB units from the background colour above which a pixel is "object".
OBJECT_THRESHOLD = 0.35


def attribute_accuracy(
    predictions: Sequence[dict[str, str]], targets: Sequence[dict[str, str]]
) -> dict[str, float]:
    """Fraction of clips whose predicted attribute equals the target, per attribute and for all three."""
    if len(predictions) != len(targets) or not targets:
        raise ValueError("need as many predictions as targets, and at least one")
    result: dict[str, float] = {}
    for key in HEADS:
        result[key] = float(np.mean([p[key] == t[key] for p, t in zip(predictions, targets, strict=True)]))
    result["all"] = float(
        np.mean([all(p[k] == t[k] for k in HEADS) for p, t in zip(predictions, targets, strict=True)])
    )
    return result


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) between two feature sets (N, D)."""
    x = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets of one width, got {x.shape} and {y.shape}")
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    # tr sqrt(Sx Sy) = sum sqrt(eig(Sx^1/2 Sy Sx^1/2)): a symmetric PSD problem, stable with eigh.
    vals, vecs = np.linalg.eigh(cov_x)
    root_x = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = np.linalg.eigvalsh(root_x @ cov_y @ root_x)
    trace_root = float(np.sqrt(np.clip(middle, 0, None)).sum())
    value = float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2.0 * trace_root)
    return max(value, 0.0)


def background_colors(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T) median colour of each frame's one-pixel border."""
    top, bottom = video[..., 0, :], video[..., -1, :]
    left, right = video[..., 1:-1, 0], video[..., 1:-1, -1]
    border = torch.cat([top, bottom, left, right], dim=-1)
    return border.float().median(dim=-1).values


def object_masks(video: torch.Tensor, threshold: float = OBJECT_THRESHOLD) -> torch.Tensor:
    """(B, T, H, W) bool: pixels whose colour is far from their frame's background colour."""
    background = background_colors(video)[..., None, None]
    distance = (video.float() - background).pow(2).sum(dim=1).sqrt()
    return distance > threshold


def centroid_paths(video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 2) object centroids (x, y) in pixels and (B, T) whether the frame has any object."""
    masks = object_masks(video).float()
    _, _, h, w = masks.shape
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w) + 0.5
    area = masks.sum(dim=(2, 3))
    safe = area.clamp_min(1.0)
    cx = (masks * xs).sum(dim=(2, 3)) / safe
    cy = (masks * ys).sum(dim=(2, 3)) / safe
    return torch.stack([cx, cy], dim=-1), area > 0


def path_errors(video: torch.Tensor) -> list[float]:
    """Per clip: RMS distance of the centroid path from its best constant-velocity fit, as a fraction
    of the shorter side (NaN when fewer than 3 frames show an object)."""
    centres, present = centroid_paths(video)
    unit = float(min(video.shape[-2:]))
    errors: list[float] = []
    for path, ok in zip(centres.numpy(), present.numpy(), strict=True):
        t = np.nonzero(ok)[0].astype(np.float64)
        if len(t) < 3:
            errors.append(float("nan"))
            continue
        design = np.stack([np.ones_like(t), t], axis=1)
        coef, *_ = np.linalg.lstsq(design, path[ok], rcond=None)
        residual = path[ok] - design @ coef
        errors.append(float(np.sqrt((residual**2).sum(axis=1).mean()) / unit))
    return errors


def flicker(video: torch.Tensor) -> list[float]:
    """Per clip: mean |frame[t+1] - frame[t]| (0-255 scale) over pixels that are background in both
    frames, with the object grown by two pixels so that its own motion does not count (over all pixels
    when almost nothing is background)."""
    if video.shape[2] < 2:
        return [0.0] * video.shape[0]
    masks = object_masks(video).float()
    grown = F.max_pool2d(masks.flatten(0, 1).unsqueeze(1), 5, stride=1, padding=2).view_as(masks) > 0
    still = ~(grown[:, 1:] | grown[:, :-1])
    change = (video[:, :, 1:] - video[:, :, :-1]).float().abs().mean(dim=1) * 127.5
    values: list[float] = []
    for diff, keep in zip(change, still, strict=True):
        # No background left (noise, or an object filling the frame): every pixel's change is flicker.
        values.append(float(diff[keep].mean()) if keep.float().mean() > 0.05 else float(diff.mean()))
    return values


def temporal_consistency(video: torch.Tensor) -> dict[str, float]:
    """Mean path error and flicker over a batch (NaN-free means over the clips where defined)."""
    paths = np.asarray(path_errors(video))
    flick = np.asarray(flicker(video))
    return {
        "path_error": float(np.nanmean(paths)) if np.isfinite(paths).any() else float("nan"),
        "flicker": float(np.nanmean(flick)) if np.isfinite(flick).any() else float("nan"),
        "object_found": float(np.isfinite(paths).mean()),
    }


def seam_ratio(video: torch.Tensor, seam: int) -> float:
    """|frame[seam] - frame[seam - 1]| over the median frame-to-frame change elsewhere in the clip
    (mean over the batch): 1 means the seam is as smooth as the clip's own motion."""
    steps = (video[:, :, 1:] - video[:, :, :-1]).float().abs().mean(dim=(1, 3, 4))  # (B, T-1)
    if not 1 <= seam < video.shape[2]:
        raise ValueError(f"seam {seam} is not between two frames of a {video.shape[2]}-frame clip")
    at_seam = steps[:, seam - 1]
    others = torch.cat([steps[:, : seam - 1], steps[:, seam:]], dim=1)
    median = others.median(dim=1).values.clamp_min(1e-6)
    return float((at_seam / median).mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two videos or frames in [-1, 1] (mean over the batch's first axis)."""
    mse = (a.float().clamp(-1, 1) - b.float().clamp(-1, 1)).pow(2).flatten(1).mean(dim=1) / 4.0
    return float((10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


def real_clips(
    count: int,
    frames: int,
    height: int,
    width: int,
    seed: int = 0,
    combos: Sequence[tuple[str, str, str]] | None = None,
) -> tuple[torch.Tensor, list[dict[str, str]]]:
    """``count`` real synthetic clips (B, 3, T, H, W) with their attributes, cycling through ``combos``
    (default: every combination) so that each is equally represented."""
    combos = list(combos) if combos is not None else list(ALL_COMBOS)
    rng = np.random.default_rng([seed, 77])
    videos, attrs = [], []
    for i in range(count):
        spec = random_spec(rng, only=[combos[i % len(combos)]])
        videos.append(to_tensor(render_clip(spec, frames, height, width)))
        attrs.append(spec.attrs())
    return torch.stack(videos), attrs


def evaluate_clips(
    judge: Judge,
    videos: torch.Tensor,
    targets: Sequence[dict[str, str]],
    real: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Every metric for generated ``videos`` prompted with ``targets``; Frechet distance against ``real``."""
    report: dict[str, Any] = {"clips": int(videos.shape[0])}
    report["accuracy"] = attribute_accuracy(judge.predict(videos), targets)
    report["temporal"] = temporal_consistency(videos)
    if real is not None and real.shape[0] >= 2 and videos.shape[0] >= 2:
        report["frechet"] = frechet_distance(judge.features(real), judge.features(videos))
    return report


GenerateFn = Callable[[list[str], int], torch.Tensor]


def evaluate_generator(
    generate: Callable[[list[str], int], torch.Tensor],
    judge: Judge,
    frames: int,
    height: int,
    width: int,
    samples: int = 48,
    held_out: bool = True,
    batch_size: int = 8,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Prompt ``generate(prompts, seed)`` with canonical captions cycling through the held-out (or the
    trained) combinations and score what comes back against real clips of the same combinations."""
    combos = sorted(HELD_OUT_COMBOS) if held_out else sorted(set(ALL_COMBOS) - HELD_OUT_COMBOS)
    chosen = [combos[i % len(combos)] for i in range(samples)]
    targets = [spec_from_attrs(dict(zip(HEADS, c, strict=True))).attrs() for c in chosen]
    outputs: list[torch.Tensor] = []
    for start in range(0, samples, batch_size):
        prompts = [canonical_caption(c) for c in chosen[start : start + batch_size]]
        outputs.append(generate(prompts, seed + start).float().cpu())
        if progress:
            progress(min(start + batch_size, samples), samples)
    videos = torch.cat(outputs)
    real, _ = real_clips(max(samples, 2), frames, height, width, seed=seed + 1, combos=combos)
    report = evaluate_clips(judge, videos, targets, real)
    # The same distance between two independent real sets: the floor at this sample count.
    other, _ = real_clips(max(samples, 2), frames, height, width, seed=seed + 2, combos=combos)
    report["frechet_real_floor"] = frechet_distance(judge.features(real), judge.features(other))
    report["combos"] = "held-out" if held_out else "trained"
    report["size"] = {"frames": frames, "height": height, "width": width}
    return report


def evaluate_pipeline(
    pipe: Any,
    judge: Judge,
    samples: int = 48,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    held_out: bool = True,
    batch_size: int = 8,
    steps: int = 25,
    cfg: float = 4.0,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`evaluate_generator` for a loaded pipeline at its trained size (or ``frames``/``size``)."""
    from fivefold.video.capabilities import _generate, geometry

    geo = geometry(pipe)
    frames = frames or geo.window
    height, width = size or (geo.height, geo.width)
    geo.check_frames(frames)
    geo.check_size(height, width)

    def generate(prompts: list[str], batch_seed: int) -> torch.Tensor:
        return _generate(pipe, prompts, frames, height, width, steps=steps, cfg=cfg, seed=batch_seed)

    return evaluate_generator(
        generate,
        judge,
        frames,
        height,
        width,
        samples=samples,
        held_out=held_out,
        batch_size=batch_size,
        seed=seed,
    )
