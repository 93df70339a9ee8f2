"""The synthetic moving-shapes generator: combinations, rendering, captions, the dataset."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold.video.data import (
    ALL_COMBOS,
    ATTRIBUTES,
    BACKGROUNDS_RGB,
    COLORS_RGB,
    HELD_OUT_COMBOS,
    ClipSpec,
    MovingShapesDataset,
    allowed_combos,
    caption,
    object_mask,
    random_spec,
    render_clip,
    trajectory,
)


def test_held_out_combos_leave_every_value_in_training() -> None:
    training = [c for c in ALL_COMBOS if c not in HELD_OUT_COMBOS]
    assert HELD_OUT_COMBOS and set(ALL_COMBOS) >= HELD_OUT_COMBOS
    for position, key in enumerate(("shape", "color", "direction")):
        assert {c[position] for c in training} == set(ATTRIBUTES[key])


def test_random_spec_respects_exclude_and_only() -> None:
    rng = np.random.default_rng(0)
    drawn = {random_spec(rng).combo() for _ in range(400)}
    assert not drawn & HELD_OUT_COMBOS
    assert len(drawn) == len(ALL_COMBOS) - len(HELD_OUT_COMBOS)
    held = {random_spec(rng, only=HELD_OUT_COMBOS).combo() for _ in range(100)}
    assert held == set(HELD_OUT_COMBOS)
    with pytest.raises(ValueError, match="unknown shape"):
        allowed_combos(only=[("hexagon", "red", "left")])
    with pytest.raises(ValueError, match="no \\(shape"):
        allowed_combos(exclude=ALL_COMBOS)


@settings(max_examples=25, deadline=None)
@given(
    frames=st.integers(1, 24),
    height=st.integers(8, 72),
    width=st.integers(8, 72),
    seed=st.integers(0, 10_000),
)
def test_render_any_size_keeps_shape_in_frame_and_moves_the_right_way(
    frames: int, height: int, width: int, seed: int
) -> None:
    spec = random_spec(np.random.default_rng(seed))
    clip = render_clip(spec, frames, height, width)
    assert clip.shape == (frames, height, width, 3) and clip.dtype == np.uint8
    centres, radius = trajectory(spec, frames, height, width)
    assert (centres >= radius).all() and (centres[:, 0] <= width - radius).all()
    assert (centres[:, 1] <= height - radius).all()
    if frames > 1:
        dx, dy = np.diff(centres, axis=0).sum(axis=0)
        expected = {"left": dx < 0, "right": dx > 0, "up": dy < 0, "down": dy > 0}[spec.direction]
        assert expected or min(height, width) - 2 * (radius + 1) <= 0


def test_render_colours_background_and_antialiasing() -> None:
    spec = ClipSpec("circle", "blue", "right", size="large", background="white")
    clip = render_clip(spec, 5, 32, 48)
    assert tuple(clip[0, 0, 0]) == BACKGROUNDS_RGB["white"]
    mask = object_mask(spec, 5, 32, 48, dilate=-1.0)
    assert (clip[mask] == COLORS_RGB["blue"]).all()
    # A soft edge: some pixels lie strictly between the colours.
    distinct = {tuple(p) for p in clip[0].reshape(-1, 3)}
    assert len(distinct) > 4
    # The centroid of the blue pixels moves right every frame.
    xs = [np.nonzero((frame == COLORS_RGB["blue"]).all(-1))[1].mean() for frame in clip]
    assert all(b > a for a, b in itertools.pairwise(xs))


def test_shapes_differ_at_32px() -> None:
    clips = [render_clip(ClipSpec(s, "red", "left"), 1, 32, 32) for s in ATTRIBUTES["shape"]]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(clips[i].astype(int) - clips[j].astype(int)).sum() > 2000


def test_captions_name_color_and_vary() -> None:
    rng = np.random.default_rng(1)
    spec = ClipSpec("square", "yellow", "down")
    texts = {caption(spec, rng) for _ in range(50)}
    assert len(texts) > 10
    assert all("yellow" in t for t in texts)


def test_dataset_items_are_deterministic_and_in_range() -> None:
    ds = MovingShapesDataset(frames=5, height=16, width=24, length=10, seed=3)
    a, b = ds[7], MovingShapesDataset(frames=5, height=16, width=24, length=10, seed=3)[7]
    assert a["video"].shape == (3, 5, 16, 24) and a["video"].dtype == torch.float32
    assert torch.equal(a["video"], b["video"]) and a["caption"] == b["caption"] and a["attrs"] == b["attrs"]
    assert a["video"].min() >= -1 and a["video"].max() <= 1
    assert not torch.equal(a["video"], ds[6]["video"])
    with pytest.raises(IndexError):
        ds[10]
