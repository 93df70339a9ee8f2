"""Training data from files: reading and writing images and videos, a dataset over a folder (or a
``fivefold crawl`` output directory), and batching by size bucket.

Items have the same format as :class:`fivefold.video.data.MovingShapesDataset`'s:
``{"video": float32 (3, T, H, W) in [-1, 1], "caption": str, "attrs": dict}`` (an image is T = 1).
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fivefold._common.errors import FivefoldError
from fivefold.video.data import to_tensor

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
VIDEO_SUFFIXES = frozenset({".gif", ".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"})


# ---------------------------------------------------------------- media files


def read_media(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """An image or video file as uint8 (T, H, W, 3); raises FivefoldError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FivefoldError(f"cannot read {path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_SUFFIXES or suffix == ".gif":
            frames = _read_with_pillow(path, max_frames)
        else:
            frames = _read_with_av(path, max_frames)
    except FivefoldError:
        raise
    except Exception as exc:  # the decoders raise many types; the user needs one line naming the file
        raise FivefoldError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise FivefoldError(f"cannot read {path}: no frames")
    return np.stack(frames)


def _read_with_pillow(path: Path, max_frames: int | None) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    frames: list[np.ndarray] = []
    durations: list[float] = []
    with Image.open(path) as image:
        comment = image.info.get("comment", b"")
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB"), dtype=np.uint8))
            durations.append(float(frame.info.get("duration") or 0))
    if len(frames) > 1 or (durations and durations[0] > 0):
        frames = _expand_held_frames(frames, durations, comment)
    return frames[:max_frames] if max_frames is not None else frames


def _expand_held_frames(frames: list[np.ndarray], durations: list[float], comment: Any) -> list[np.ndarray]:
    """GIF writers merge identical consecutive frames into one longer frame; repeat them back.

    The frame period comes from the ``fivefold fps=N`` comment that
    :func:`fivefold.video.media.write_media` leaves, else from the shortest frame."""
    text = comment.decode("ascii", "replace") if isinstance(comment, bytes) else str(comment)
    period = 0.0
    if text.startswith("fivefold fps="):
        try:
            period = 1000.0 / float(text.split("=", 1)[1])
        except ValueError:
            period = 0.0
    if period <= 0:
        positive = [d for d in durations if d > 0]
        if not positive or len(frames) < 2:
            return frames
        period = min(positive)
    out: list[np.ndarray] = []
    for frame, duration in zip(frames, durations, strict=True):
        out.extend([frame] * max(1, round(duration / period)))
    return out


def _read_with_av(path: Path, max_frames: int | None) -> list[np.ndarray]:
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise FivefoldError(f"cannot read {path}: no video stream")
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return frames


def media_info(path: Path) -> tuple[int, int, int]:
    """(frames, height, width) of a media file, without decoding all of it where the format allows."""
    suffix = path.suffix.lower()
    if suffix == ".gif":  # merged identical frames only show in the durations: count them as read
        frames = _read_with_pillow(path, None)
        return (len(frames), frames[0].shape[0], frames[0].shape[1])
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image

        with Image.open(path) as image:
            return (int(getattr(image, "n_frames", 1)), image.height, image.width)
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = int(stream.frames or 0)
        if count == 0:  # containers that do not store the count: decode to find it
            count = sum(1 for _ in container.decode(video=0))
        return (count, int(stream.codec_context.height), int(stream.codec_context.width))


def resize_video(video: torch.Tensor, height: int, width: int, crop: bool = True) -> torch.Tensor:
    """Resize float (3, T, H, W) to (3, T, height, width): scale to cover and centre-crop (``crop``),
    or stretch. Anti-aliased when shrinking."""
    _, _, h, w = video.shape
    if (h, w) == (height, width):
        return video
    frames = video.permute(1, 0, 2, 3)
    if crop:
        scale = max(height / h, width / w)
        nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    else:
        nh, nw = height, width
    frames = torch.nn.functional.interpolate(
        frames, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
    )
    top, left = (nh - height) // 2, (nw - width) // 2
    frames = frames[:, :, top : top + height, left : left + width]
    return frames.permute(1, 0, 2, 3).clamp(-1, 1).contiguous()


# ---------------------------------------------------------------- folders and crawl output


@dataclass(frozen=True)
class MediaItem:
    path: Path
    caption: str
    frames: int  # frames the item will yield
    height: int
    width: int


class FolderDataset(Dataset[dict[str, Any]]):
    """Images and videos under ``root`` (recursively), or the files a ``fivefold crawl`` run listed in
    ``root/manifest.jsonl``. Captions: a sidecar ``NAME.txt``, else the manifest title, else the file name.

    Bucketing: each item is resized (cover + centre crop) to the bucket size of nearest aspect ratio
    among ``sizes`` (default ``[(height, width)]``) and trimmed to the longest of ``lengths`` (default
    ``[frames]``) it can fill; images, and videos shorter than every length, become one-frame items.
    """

    def __init__(
        self,
        root: str | Path,
        frames: int = 9,
        height: int = 32,
        width: int = 32,
        sizes: Sequence[tuple[int, int]] | None = None,
        lengths: Sequence[int] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FivefoldError(f"dataset folder {self.root} does not exist")
        self.sizes = [tuple(s) for s in sizes] if sizes else [(height, width)]
        self.lengths = sorted(set(lengths)) if lengths else [frames]
        self.items: list[MediaItem] = []
        for path, title in self._candidates():
            try:
                count, h, w = media_info(path)
            except Exception as exc:  # a broken file should not stop the other thousands
                warnings.warn(f"skipping unreadable {path}: {exc}", stacklevel=2)
                continue
            if count < 1 or h < 1 or w < 1:
                continue
            length = max((n for n in self.lengths if n <= count), default=1)
            bucket_h, bucket_w = min(self.sizes, key=lambda s: abs(math.log((s[1] / s[0]) / (w / h))))
            self.items.append(MediaItem(path, self._caption(path, title), length, bucket_h, bucket_w))
        if not self.items:
            raise FivefoldError(f"no readable images or videos in {self.root}")

    def _candidates(self) -> Iterator[tuple[Path, str | None]]:
        manifest = self.root / "manifest.jsonl"
        if manifest.is_file():
            yield from self._manifest_rows(manifest)
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                yield path, None

    def _manifest_rows(self, manifest: Path) -> Iterator[tuple[Path, str | None]]:
        seen: set[Path] = set()
        with manifest.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FivefoldError(f"{manifest}:{number}: not JSON: {exc.msg}") from exc
                if not isinstance(row, dict) or not row.get("path"):
                    continue
                # docs/crawl.md: "stored" rows own a file; "duplicate" rows point at one already listed.
                if row.get("status") != "stored":
                    continue
                path = (self.root / str(row["path"])).resolve()
                if path in seen or path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    continue
                if not path.is_file():
                    continue
                seen.add(path)
                title = row.get("title")
                yield path, (str(title) if title else None)

    @staticmethod
    def _caption(path: Path, title: str | None) -> str:
        sidecar = path.with_suffix(".txt")
        if sidecar.is_file():
            text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return " ".join(text.split())
        if title:
            return " ".join(title.split())
        return " ".join(path.stem.replace("_", " ").replace("-", " ").split())

    def __len__(self) -> int:
        return len(self.items)

    def item_shape(self, index: int) -> tuple[int, int, int]:
        item = self.items[index]
        return (item.frames, item.height, item.width)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        frames = read_media(item.path, max_frames=item.frames)[: item.frames]
        video = resize_video(to_tensor(frames), item.height, item.width)
        if video.shape[1] < item.frames:  # a file that shrank since the scan: hold the last frame
            pad = video[:, -1:].expand(-1, item.frames - video.shape[1], -1, -1)
            video = torch.cat([video, pad], dim=1)
        return {"video": video, "caption": item.caption, "attrs": {"path": str(item.path)}}


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose items share one (T, H, W), so they stack without padding.

    Shuffles within and across buckets per epoch (``set_epoch``); with ``world_size`` > 1 each rank
    takes every ``world_size``-th batch of the same global order (for DistributedDataParallel)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.groups: dict[tuple[int, int, int], list[int]] = {}
        for index in range(len(dataset)):
            self.groups.setdefault(tuple(dataset.item_shape(index)), []).append(index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        batches: list[list[int]] = []
        for key in sorted(self.groups):
            indices = list(self.groups[key])
            if self.shuffle:
                rng.shuffle(indices)
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items of one shape: ``video`` (B, 3, T, H, W), ``caption`` list, ``attrs`` list of dicts."""
    shapes = {tuple(item["video"].shape) for item in items}
    if len(shapes) != 1:
        raise ValueError(f"cannot stack items of different shapes {sorted(shapes)}; use BucketBatchSampler")
    return {
        "video": torch.stack([item["video"] for item in items]),
        "caption": [item["caption"] for item in items],
        "attrs": [item["attrs"] for item in items],
    }
