"""Training data: synthetic moving shapes, folders of images/videos (and crawl output), buckets.

Every dataset yields the same item format, so images and videos share one batch layout:
``{"video": float32 (3, T, H, W) in [-1, 1], "caption": str, "attrs": dict}`` (an image is T = 1).

The synthetic clips are drawn from a signed-distance renderer with a one-pixel soft edge: the shapes
stay anti-aliased (and so learnable) at 32x32, and the renderer takes any size, length and aspect ratio.
Geometry is in units of the shorter side, so a shape keeps its look at aspect ratios never trained on.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fivefold._common.errors import FivefoldError

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle"),
    "color": ("red", "green", "blue", "yellow"),
    "direction": ("left", "right", "up", "down"),
    "size": ("small", "large"),
    "speed": ("slow", "fast"),
    "background": ("black", "gray", "white"),
}

# Combinations never drawn for training. Each value of each attribute appears here at most twice and
# in training with every other value, so a model that generates these has composed, not memorised.
HELD_OUT_COMBOS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("circle", "red", "left"),
        ("square", "green", "up"),
        ("triangle", "blue", "right"),
        ("circle", "yellow", "down"),
        ("square", "blue", "left"),
        ("triangle", "yellow", "up"),
    }
)

ALL_COMBOS: tuple[tuple[str, str, str], ...] = tuple(
    itertools.product(ATTRIBUTES["shape"], ATTRIBUTES["color"], ATTRIBUTES["direction"])
)

COLORS_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 205, 35),
}
BACKGROUNDS_RGB: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 16),
    "gray": (96, 96, 100),
    "white": (232, 232, 228),
}
# Radius (half-extent) as a fraction of the shorter side.
SIZE_FRACTION: dict[str, float] = {"small": 0.16, "large": 0.24}
# Displacement per frame as a fraction of the shorter side.
SPEED_FRACTION: dict[str, float] = {"slow": 0.03, "fast": 0.06}
DIRECTION_VECTORS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
VIDEO_SUFFIXES = frozenset({".gif", ".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"})


@dataclass(frozen=True)
class ClipSpec:
    """One synthetic clip. ``start`` and ``offset`` are fractions in [0, 1] of the room the path leaves:
    ``start`` along the motion axis, ``offset`` across it (resolved at render time for the frame count
    and size, so one spec renders sensibly at any size and length)."""

    shape: str
    color: str
    direction: str
    size: str = "small"
    speed: str = "slow"
    background: str = "black"
    start: float = 0.5
    offset: float = 0.5

    def combo(self) -> tuple[str, str, str]:
        return (self.shape, self.color, self.direction)

    def attrs(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items() if k in ATTRIBUTES}


def allowed_combos(
    exclude: frozenset[tuple[str, str, str]] | Sequence[tuple[str, str, str]] = HELD_OUT_COMBOS,
    only: Sequence[tuple[str, str, str]] | frozenset[tuple[str, str, str]] | None = None,
) -> list[tuple[str, str, str]]:
    """The (shape, color, direction) combinations to draw from: ``only`` when given (``exclude`` is then
    ignored, so ``only=HELD_OUT_COMBOS`` works without clearing ``exclude``), else all but ``exclude``."""
    if only is not None:
        combos = sorted(set(only))
        for combo in combos:
            _check_combo(combo)
    else:
        excluded = set(exclude)
        combos = [c for c in ALL_COMBOS if c not in excluded]
    if not combos:
        raise ValueError("no (shape, color, direction) combination is left to draw from")
    return combos


def _check_combo(combo: tuple[str, str, str]) -> None:
    for key, value in zip(("shape", "color", "direction"), combo, strict=True):
        if value not in ATTRIBUTES[key]:
            raise ValueError(f"unknown {key} {value!r}; choose from {', '.join(ATTRIBUTES[key])}")


def random_spec(
    rng: np.random.Generator,
    exclude: frozenset[tuple[str, str, str]] | Sequence[tuple[str, str, str]] = HELD_OUT_COMBOS,
    only: Sequence[tuple[str, str, str]] | frozenset[tuple[str, str, str]] | None = None,
) -> ClipSpec:
    """A random clip whose (shape, color, direction) is drawn uniformly from :func:`allowed_combos`."""
    combos = allowed_combos(exclude, only)
    shape, color, direction = combos[int(rng.integers(len(combos)))]
    return ClipSpec(
        shape=shape,
        color=color,
        direction=direction,
        size=ATTRIBUTES["size"][int(rng.integers(2))],
        speed=ATTRIBUTES["speed"][int(rng.integers(2))],
        background=ATTRIBUTES["background"][int(rng.integers(3))],
        start=float(rng.uniform(0.0, 1.0)),
        offset=float(rng.uniform(0.1, 0.9)),
    )


def spec_from_attrs(attrs: dict[str, str], rng: np.random.Generator | None = None) -> ClipSpec:
    """A spec with the given attributes and random (or default) values for the rest."""
    fields: dict[str, Any] = {}
    for key in ATTRIBUTES:
        if key in attrs:
            if attrs[key] not in ATTRIBUTES[key]:
                raise ValueError(f"unknown {key} {attrs[key]!r}; choose from {', '.join(ATTRIBUTES[key])}")
            fields[key] = attrs[key]
        elif key in ("shape", "color", "direction"):
            raise ValueError(f"missing attribute {key!r}")
        elif rng is not None:
            fields[key] = ATTRIBUTES[key][int(rng.integers(len(ATTRIBUTES[key])))]
    if rng is not None:
        fields["start"] = float(rng.uniform(0.0, 1.0))
        fields["offset"] = float(rng.uniform(0.1, 0.9))
    return ClipSpec(**fields)


def trajectory(spec: ClipSpec, frames: int, height: int, width: int) -> tuple[np.ndarray, float]:
    """Centre of the shape in pixels for each frame, (T, 2) as (x, y), and its radius in pixels.

    The speed is per frame; when the path would not fit in the frame (long clips) it is slowed just
    enough to fit, so the shape never leaves the picture."""
    unit = float(min(height, width))
    radius = SIZE_FRACTION[spec.size] * unit
    margin = 1.0 + radius
    step = SPEED_FRACTION[spec.speed] * unit
    dx, dy = DIRECTION_VECTORS[spec.direction]
    along_extent, across_extent = (width, height) if dx else (height, width)
    room = max(along_extent - 2.0 * margin, 0.0)
    if frames > 1:
        step = min(step, room / (frames - 1))
    travel = step * max(frames - 1, 0)
    begin = margin + spec.start * (room - travel)
    across = margin + spec.offset * max(across_extent - 2.0 * margin, 0.0)
    along = begin + step * np.arange(frames, dtype=np.float64)
    if dx < 0 or dy < 0:  # moving towards smaller coordinates: walk the same path backwards
        along = along_extent - along
    if dx:
        centres = np.stack([along, np.full(frames, across)], axis=1)
    else:
        centres = np.stack([np.full(frames, across), along], axis=1)
    return centres, radius


def _signed_distance(shape: str, px: np.ndarray, py: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance in pixels from points relative to the shape centre (negative inside)."""
    if shape == "circle":
        return np.asarray(np.hypot(px, py) - radius)
    if shape == "square":
        # Slightly smaller half-side than the circle's radius so both cover about the same area.
        half = radius * 0.89
        qx, qy = np.abs(px) - half, np.abs(py) - half
        outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
        return np.asarray(outside + np.minimum(np.maximum(qx, qy), 0.0))
    if shape == "triangle":
        # Equilateral, pointing up, circumradius ``radius * 1.15`` (Inigo Quilez's exact distance).
        r = radius * 1.15 * math.sqrt(3.0) / 2.0  # half the side length
        k = math.sqrt(3.0)
        x = np.abs(px) - r
        y = -py + r / k  # image y grows downwards; the formula wants it upwards
        fold = x + k * y > 0.0
        x, y = np.where(fold, (x - k * y) / 2.0, x), np.where(fold, (-k * x - y) / 2.0, y)
        x = x - np.clip(x, -2.0 * r, 0.0)
        return np.asarray(-np.hypot(x, y) * np.sign(y))
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(ATTRIBUTES['shape'])}")


def render_clip(spec: ClipSpec, frames: int, height: int, width: int) -> np.ndarray:
    """The clip as uint8 (T, H, W, 3)."""
    if frames < 1 or height < 4 or width < 4:
        raise ValueError(f"cannot render {frames} frames of {width}x{height}: need T >= 1 and H, W >= 4")
    centres, radius = trajectory(spec, frames, height, width)
    ys = np.arange(height, dtype=np.float64)[None, :, None] + 0.5
    xs = np.arange(width, dtype=np.float64)[None, None, :] + 0.5
    px = xs - centres[:, 0, None, None]
    py = ys - centres[:, 1, None, None]
    coverage = np.clip(0.5 - _signed_distance(spec.shape, px, py, radius), 0.0, 1.0)[..., None]
    fg = np.asarray(COLORS_RGB[spec.color], dtype=np.float64)
    bg = np.asarray(BACKGROUNDS_RGB[spec.background], dtype=np.float64)
    out = bg + coverage * (fg - bg)
    return np.asarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def object_mask(spec: ClipSpec, frames: int, height: int, width: int, dilate: float = 1.5) -> np.ndarray:
    """Boolean (T, H, W): pixels within ``dilate`` pixels of the shape (for flicker measurements)."""
    centres, radius = trajectory(spec, frames, height, width)
    ys = np.arange(height, dtype=np.float64)[None, :, None] + 0.5
    xs = np.arange(width, dtype=np.float64)[None, None, :] + 0.5
    distance = _signed_distance(
        spec.shape, xs - centres[:, 0, None, None], ys - centres[:, 1, None, None], radius
    )
    return np.asarray(distance < dilate)


_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circle", "disc", "ball", "round dot"),
    "square": ("square", "square", "box", "block", "square tile"),
    "triangle": ("triangle", "triangle", "triangle", "wedge", "triangular shape"),
}
_DIRECTION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left", "leftward", "towards the left edge"),
    "right": ("right", "to the right", "rightward", "towards the right edge"),
    "up": ("up", "upward", "upwards", "towards the top"),
    "down": ("down", "downward", "downwards", "towards the bottom"),
}
_SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "large": ("large", "big", "huge"),
}
_SPEED_WORDS: dict[str, tuple[str, ...]] = {
    "slow": ("slowly", "gently", "lazily"),
    "fast": ("quickly", "fast", "rapidly"),
}
_BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark"),
    "gray": ("gray", "grey"),
    "white": ("white", "light"),
}
_VERBS = ("moving", "moves", "drifts", "slides", "glides", "travels", "going", "heading")
_TEMPLATES = (
    "a {color} {shape} {verb} {direction}",
    "a {color} {shape} {verb} {direction}",
    "a {size} {color} {shape} {verb} {direction}",
    "a {size} {color} {shape} {verb} {direction} on a {background} background",
    "a {color} {shape} {verb} {speed} {direction}",
    "{size} {color} {shape}, {verb} {direction}",
    "a {color} {shape} on a {background} background {verb} {direction}",
    "the {color} {shape} is {verb2} {direction}",
)


def canonical_caption(spec: ClipSpec | tuple[str, str, str]) -> str:
    """The plain prompt used for evaluation: ``"a red circle moving left"``."""
    shape, color, direction = spec.combo() if isinstance(spec, ClipSpec) else spec
    return f"a {color} {shape} moving {direction}"


def caption(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A caption from templates and paraphrases; always names the shape, colour and direction."""

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    template = pick(_TEMPLATES)
    return template.format(
        color=spec.color,
        shape=pick(_SHAPE_WORDS[spec.shape]),
        verb=pick(_VERBS),
        verb2=pick(("moving", "sliding", "drifting", "travelling")),
        direction=pick(_DIRECTION_PHRASES[spec.direction]),
        size=pick(_SIZE_WORDS[spec.size]),
        speed=pick(_SPEED_WORDS[spec.speed]),
        background=pick(_BACKGROUND_WORDS[spec.background]),
    )


def to_tensor(video: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (3, T, H, W) in [-1, 1]."""
    array = torch.from_numpy(np.ascontiguousarray(video))
    return array.permute(3, 0, 1, 2).float().div(127.5).sub(1.0).contiguous()


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    pixels = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 3, 0).cpu().numpy())


class MovingShapesDataset(Dataset[dict[str, Any]]):
    """Synthetic moving-shapes clips, deterministic per (seed, index).

    ``buckets``: optional list of (T, H, W); item ``i`` gets ``buckets[i % len(buckets)]`` (use
    :class:`BucketBatchSampler` to batch equal shapes), otherwise every item is (frames, height, width).
    """

    def __init__(
        self,
        frames: int = 9,
        height: int = 32,
        width: int = 32,
        length: int = 1024,
        seed: int = 0,
        exclude: frozenset[tuple[str, str, str]] | Sequence[tuple[str, str, str]] = HELD_OUT_COMBOS,
        only: Sequence[tuple[str, str, str]] | frozenset[tuple[str, str, str]] | None = None,
        buckets: Sequence[tuple[int, int, int]] | None = None,
    ) -> None:
        self.frames, self.height, self.width = frames, height, width
        self.length = length
        self.seed = seed
        self.exclude = frozenset(exclude)
        self.only = None if only is None else frozenset(only)
        allowed_combos(self.exclude, self.only)  # fail now, not in a worker
        self.buckets = [tuple(b) for b in buckets] if buckets else [(frames, height, width)]

    def __len__(self) -> int:
        return self.length

    def item_shape(self, index: int) -> tuple[int, int, int]:
        t, h, w = self.buckets[index % len(self.buckets)]
        return (t, h, w)

    def spec(self, index: int) -> tuple[ClipSpec, str]:
        rng = np.random.default_rng([self.seed, index])
        spec = random_spec(rng, self.exclude, self.only)
        return spec, caption(spec, rng)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        spec, text = self.spec(index)
        frames, height, width = self.item_shape(index)
        video = to_tensor(render_clip(spec, frames, height, width))
        return {"video": video, "caption": text, "attrs": spec.attrs()}


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

    The frame period comes from the ``fivefold fps=N`` comment :func:`write_media` leaves, else from the
    shortest frame."""
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


def write_media(path: str | Path, video: np.ndarray, fps: int = 8) -> Path:
    """Write uint8 (T, H, W, 3) as .gif, .mp4 or (first frame) .png/.jpg, atomically."""
    import os
    import tempfile

    path = Path(path)
    suffix = path.suffix.lower()
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got {video.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            from PIL import Image

            Image.fromarray(video[0]).save(tmp)
        elif suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(frame) for frame in video]
            images[0].save(
                tmp,
                save_all=True,
                append_images=images[1:],
                duration=int(1000 / fps),
                loop=0,
                comment=f"fivefold fps={fps}".encode(),
            )
        elif suffix in (".mp4", ".webm", ".mov", ".mkv"):
            _write_with_av(tmp, video, fps)
        else:
            raise FivefoldError(f"cannot write {path}: unknown format {suffix!r} (use .gif, .mp4 or .png)")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_with_av(path: Path, video: np.ndarray, fps: int) -> None:
    import av

    # H.264 in yuv420p needs even sizes; pad by repeating the last row/column.
    _, h, w, _ = video.shape
    frames = np.pad(video, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264" if path.suffix.lower() != ".webm" else "libvpx-vp9", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


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
