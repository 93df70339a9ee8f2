"""Writing clips: GIF (Pillow), MP4 (PyAV), PNG stills and grids (one row per clip, frames left to right)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fivefold._common.errors import FivefoldError, UsageError
from fivefold._common.files import atomic_path
from fivefold.video.data import to_uint8


def to_frames(video: Tensor, upscale: int = 1) -> np.ndarray:
    """(3,T,H,W) in [-1,1] -> uint8 (T,H*u,W*u,3), nearest-neighbour upscaled."""
    frames = to_uint8(video)
    if upscale > 1:
        frames = np.ascontiguousarray(frames.repeat(upscale, axis=1).repeat(upscale, axis=2))
    return frames


def tile(videos: Tensor) -> Tensor:
    """(B,3,T,H,W) -> (3,T,H,B*W): several clips side by side in one clip."""
    return torch.cat(list(videos), dim=-1)


def side_by_side(*clips: Tensor, gap: int = 2) -> Tensor:
    """Clips (3,T,H,W) next to each other; shorter ones hold their last frame."""
    length = max(c.shape[1] for c in clips)
    height = max(c.shape[2] for c in clips)
    parts: list[Tensor] = []
    for i, clip in enumerate(clips):
        pad_t = length - clip.shape[1]
        clip = torch.cat([clip, clip[:, -1:].expand(-1, pad_t, -1, -1)], dim=1) if pad_t else clip
        if clip.shape[2] < height:
            clip = torch.nn.functional.pad(clip, (0, 0, 0, height - clip.shape[2]), value=1.0)
        parts.append(clip)
        if i < len(clips) - 1:
            parts.append(torch.ones(3, length, height, gap))
    return torch.cat(parts, dim=3)


def save_video(path: Path, videos: Tensor, *, fps: int = 6, upscale: int = 1) -> Path:
    """One clip (3,T,H,W) or a batch shown side by side; .gif or .mp4, written atomically."""
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise UsageError(f"{path}: clips are written as .gif or .mp4")
    video = tile(videos) if videos.dim() == 5 else videos
    return write_media(path, to_frames(video, upscale), fps=fps)


def write_media(path: str | Path, video: np.ndarray, fps: int = 8) -> Path:
    """Write uint8 (T, H, W, 3) as .gif, .mp4 or (first frame) .png/.jpg, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got {video.shape}")
    with atomic_path(path, suffix=suffix) as tmp:
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


def save_grid(path: Path, videos: Tensor, *, upscale: int = 1, pad: int = 1) -> Path:
    """PNG with one row per clip of (B,3,T,H,W), its frames left to right."""
    from PIL import Image

    rows = []
    for video in videos:
        frames = to_frames(video, upscale)
        t, h, w, _ = frames.shape
        row = np.full((h, t * (w + pad) - pad, 3), 255, dtype=np.uint8)
        for i in range(t):
            row[:, i * (w + pad) : i * (w + pad) + w] = frames[i]
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.full((sum(r.shape[0] + pad for r in rows) - pad, width, 3), 255, dtype=np.uint8)
    y = 0
    for r in rows:
        sheet[y : y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + pad
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(sheet).save(tmp)
    return path
