"""The synthetic moving-shapes generator, media I/O, the folder/crawl dataset and size buckets."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold._common.errors import FivefoldError
from fivefold.video.data import (
    ALL_COMBOS,
    ATTRIBUTES,
    BACKGROUNDS_RGB,
    COLORS_RGB,
    HELD_OUT_COMBOS,
    BucketBatchSampler,
    ClipSpec,
    FolderDataset,
    MovingShapesDataset,
    allowed_combos,
    caption,
    collate,
    object_mask,
    random_spec,
    read_media,
    render_clip,
    trajectory,
    write_media,
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


def test_buckets_batch_equal_shapes() -> None:
    ds = MovingShapesDataset(length=23, buckets=[(1, 16, 16), (5, 16, 24), (9, 24, 16)])
    sampler = BucketBatchSampler(ds, batch_size=4, seed=0)
    seen: list[int] = []
    for batch in sampler:
        shapes = {ds.item_shape(i) for i in batch}
        assert len(shapes) == 1
        stacked = collate([ds[i] for i in batch])
        assert stacked["video"].shape[0] == len(batch)
        seen.extend(batch)
    assert sorted(seen) == list(range(23))
    ranks = [list(BucketBatchSampler(ds, 4, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(i for r in ranks for b in r for i in b) == list(range(23))
    with pytest.raises(ValueError, match="BucketBatchSampler"):
        collate([ds[0], ds[1]])


def test_media_round_trip(tmp_path: Path) -> None:
    clip = render_clip(ClipSpec("square", "green", "up", size="large"), 6, 24, 30)
    for name in ("a.gif", "a.mp4", "a.png"):
        path = write_media(tmp_path / name, clip)
        back = read_media(path)
        expected = clip[:1] if name.endswith(".png") else clip
        assert back.shape == expected.shape
        assert np.abs(back.astype(int) - expected.astype(int)).mean() < 8
    # GIF writers merge identical consecutive frames; reading repeats them back.
    still = np.repeat(clip[:1], 5, axis=0)
    assert read_media(write_media(tmp_path / "still.gif", still, fps=10)).shape == still.shape
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(FivefoldError, match=r"cannot read .*bad\.mp4"):
        read_media(tmp_path / "bad.mp4")
    with pytest.raises(FivefoldError, match="no such file"):
        read_media(tmp_path / "missing.gif")


def test_folder_dataset_reads_crawl_manifest_and_buckets(tmp_path: Path) -> None:
    wide = render_clip(ClipSpec("circle", "red", "right"), 12, 20, 40)
    tall = render_clip(ClipSpec("square", "blue", "down"), 3, 40, 20)
    write_media(tmp_path / "media" / "wide.gif", wide)
    write_media(tmp_path / "media" / "tall.mp4", tall)
    write_media(tmp_path / "media" / "still.png", wide)
    (tmp_path / "media" / "broken.png").write_bytes(b"junk")
    rows = [
        {"path": "media/wide.gif", "status": "stored", "title": "A red ball rolling"},
        {"path": "media/tall.mp4", "status": "stored", "title": None, "extra": 1},
        {"path": "media/still.png", "status": "stored", "title": "still"},
        {"path": "media/still.png", "status": "duplicate", "title": "again"},
        {"path": None, "status": "failed", "title": "x"},
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = FolderDataset(tmp_path, frames=9, height=16, width=16, sizes=[(16, 32), (32, 16)], lengths=[1, 9])
    assert len(ds) == 3
    by_caption = {ds[i]["caption"]: ds[i] for i in range(len(ds))}
    assert by_caption["A red ball rolling"]["video"].shape == (3, 9, 16, 32)
    assert by_caption["tall"]["video"].shape == (3, 1, 32, 16)  # 3 frames < 9: a one-frame item
    assert by_caption["still"]["video"].shape == (3, 1, 16, 32)
    # Without a manifest the folder is scanned; the broken file is skipped with a warning.
    with pytest.warns(UserWarning, match="broken.png"):
        plain = FolderDataset(tmp_path / "media", frames=9, height=16, width=16)
    assert len(plain) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(FivefoldError, match="no readable"):
        FolderDataset(tmp_path / "empty")
