"""Metrics for generated clips: accuracy, Frechet distance, temporal consistency, seams, PSNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fivefold.video.data import ClipSpec, render_clip, to_tensor
from fivefold.video.evaluate import (
    attribute_accuracy,
    centroid_paths,
    evaluate_generator,
    flicker,
    frechet_distance,
    path_errors,
    psnr,
    real_clips,
    seam_ratio,
    temporal_consistency,
)
from fivefold.video.judge import load_judge


def test_attribute_accuracy_counts_each_head_and_all() -> None:
    targets = [{"shape": "circle", "color": "red", "direction": "left"}] * 4
    predictions = [
        {"shape": "circle", "color": "red", "direction": "left"},
        {"shape": "circle", "color": "red", "direction": "up"},
        {"shape": "square", "color": "red", "direction": "left"},
        {"shape": "circle", "color": "blue", "direction": "left"},
    ]
    assert attribute_accuracy(predictions, targets) == {
        "shape": 0.75,
        "color": 0.75,
        "direction": 0.75,
        "all": 0.25,
    }
    with pytest.raises(ValueError):
        attribute_accuracy(predictions[:2], targets)


def test_frechet_distance_matches_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) against N(m, 4I): |m|^2 + D (1 + 4 - 2 * 2) = |m|^2 + D.
    b = rng.normal(size=(4000, 6)) * 2.0 + 0.5
    assert frechet_distance(a, b) == pytest.approx(6 * 0.25 + 6, rel=0.08)
    scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy (dev extra) gives an independent sqrtm")
    x, y = rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    expected = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(cx + cy - 2 * scipy_linalg.sqrtm(cx @ cy).real)
    assert frechet_distance(torch.tensor(x), torch.tensor(y)) == pytest.approx(expected, rel=1e-6)


def test_real_clips_are_temporally_consistent() -> None:
    videos, _ = real_clips(12, 9, 32, 32, seed=1)
    scores = temporal_consistency(videos)
    assert scores["path_error"] < 0.01 and scores["flicker"] < 0.5 and scores["object_found"] == 1.0


def test_centroid_follows_the_object() -> None:
    spec = ClipSpec("square", "red", "right", size="small", speed="fast", background="gray")
    clip = to_tensor(render_clip(spec, 9, 32, 48))[None]
    centres, present = centroid_paths(clip)
    assert present.all()
    assert (centres[0, 1:, 0] > centres[0, :-1, 0]).all()
    assert torch.allclose(centres[0, :, 1], centres[0, :1, 1], atol=0.05)


def test_jumps_and_flicker_are_caught() -> None:
    smooth = to_tensor(render_clip(ClipSpec("circle", "blue", "left", speed="fast"), 9, 32, 32))[None]
    jumpy = smooth.clone()
    jumpy[:, :, 4] = smooth[:, :, 0]  # the object jumps back for one frame
    assert path_errors(jumpy)[0] > 5 * max(path_errors(smooth)[0], 1e-3)
    noisy = smooth + 0.1 * torch.randn(smooth.shape, generator=torch.Generator().manual_seed(0))
    assert flicker(noisy)[0] > 5.0 > flicker(smooth)[0]


def test_seam_ratio_and_psnr() -> None:
    clip = to_tensor(render_clip(ClipSpec("circle", "green", "down"), 13, 32, 32))[None]
    assert 0.5 < seam_ratio(clip, 6) < 1.5
    other = to_tensor(render_clip(ClipSpec("circle", "green", "down", offset=0.05), 13, 32, 32))[None]
    cut = torch.cat([clip[:, :, :7], other[:, :, 7:]], dim=2)  # a hard cut at frame 7
    assert seam_ratio(cut, 7) > 3.0
    with pytest.raises(ValueError):
        seam_ratio(clip, 0)
    assert psnr(clip, clip) > 90
    assert 10 < psnr(clip, clip + 0.1) < 30


def test_evaluate_generator_scores_real_and_garbage_generators() -> None:
    torch.set_num_threads(1)
    judge = load_judge()

    def perfect(prompts: list[str], seed: int) -> torch.Tensor:
        clips = []
        for prompt in prompts:
            _, color, shape, _, direction = prompt.split()
            clips.append(to_tensor(render_clip(ClipSpec(shape, color, direction, speed="fast"), 9, 32, 32)))
        return torch.stack(clips)

    def garbage(prompts: list[str], seed: int) -> torch.Tensor:
        return torch.rand(len(prompts), 3, 9, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1

    good = evaluate_generator(perfect, judge, 9, 32, 32, samples=24, batch_size=12)
    bad = evaluate_generator(garbage, judge, 9, 32, 32, samples=24, batch_size=12)
    assert good["combos"] == "held-out" and good["clips"] == 24
    assert good["accuracy"]["all"] >= 0.9 > 0.3 > bad["accuracy"]["all"]
    assert good["frechet"] * 5 < bad["frechet"] and good["frechet_real_floor"] * 5 < bad["frechet"]
    assert good["temporal"]["flicker"] < 1.0 < bad["temporal"]["flicker"]
