"""Media files (read/write round trips), the folder/crawl dataset, and size-bucket batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fivefold._common.errors import FivefoldError
from fivefold.video.data import ClipSpec, MovingShapesDataset, render_clip
from fivefold.video.folder import BucketBatchSampler, FolderDataset, collate, read_media
from fivefold.video.media import write_media


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
