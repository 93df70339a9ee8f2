"""Synthetic training data: moving shapes at any size, length and aspect ratio, with captions.

Every dataset (this one and :class:`fivefold.video.folder.FolderDataset`) yields the same item format, so
images and videos share one batch layout:
``{"video": float32 (3, T, H, W) in [-1, 1], "caption": str, "attrs": dict}`` (an image is T = 1).

The synthetic clips are drawn from a signed-distance renderer with a one-pixel soft edge: the shapes
stay anti-aliased (and so learnable) at 32x32, and the renderer takes any size, length and aspect ratio.
Geometry is in units of the shorter side, so a shape keeps its look at aspect ratios never trained on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

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
    :class:`fivefold.video.folder.BucketBatchSampler` to batch equal shapes), otherwise every item is
    (frames, height, width).
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
