"""The Sora capabilities on one model: animate, extend (forward, backward, loop), long, edit, connect, image.

Each is built from calls to the sampler (:func:`fivefold.video.sample.generate`) with some pixel frames
given as known: the sampler encodes them, hands their clean latents and a mask channel to the DiT (which
was trained with random first/last/first+last/span masks) and generates the rest.

Windows. The DiT is best at the length it was trained on (``window`` frames = 1 + t*k with the VAE's
temporal factor t). Known frames always open a window: there the causal VAE's first latent frame is
one pixel frame encoded on its own, and each later one t frames, so the context is 1 + t*m frames. Half
of the window's latent frames are context, so consecutive windows overlap by half: the model sees the
motion it has to continue, not one still frame. Known frames at the *end* of a window are encoded after
frames nobody has generated yet, and the DiT follows them poorly (measured in
``docs/video-capabilities.md``), so nothing here puts them there:

* backward extension extends the reversed clip forward (:mod:`fivefold.video.reversal`);
* loop and connect are bridges: the clip before continued forward, the clip after continued backward,
  and the two continuations cross-dissolved over the new frames (:func:`dissolve_weights`).

Joins. The given frames are returned as they were (connect, too, starts with A's own last frames and
ends with B's own first ones); the decoder's error at each join is carried into the generated frames
next to it (:mod:`fivefold.video.seams`), so a join is no more visible than the motion.

Sizes. Requested sizes (``--size``, ``--frames``) must be ones the model can take; otherwise a
:class:`UsageError` names the nearest valid ones. Input media of another size are resized (scaled to cover
and centre-cropped) to the nearest valid size with a warning, because a user's clip rarely has
model-friendly dimensions and refusing it would only make them resize it by hand.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import torch
from torch import Tensor

from fivefold._common.errors import FivefoldError, UsageError
from fivefold.video.data import to_tensor
from fivefold.video.folder import read_media, resize_video
from fivefold.video.media import to_frames, write_media
from fivefold.video.reversal import reverse_motion
from fivefold.video.seams import carry_in

FPS = 8
# The backward half of a bridge draws other noise than the forward half.
BACKWARD_SEED_OFFSET = 7919


class ResizeWarning(UserWarning):
    """An input was resized or trimmed to a size the model can take."""


@dataclass(frozen=True)
class Geometry:
    """What sizes and lengths the loaded model takes."""

    window: int  # frames the model was trained on
    temporal: int  # VAE temporal factor
    multiple: int  # height and width must be multiples of this
    height: int  # trained size
    width: int

    @property
    def latent_window(self) -> int:
        return 1 + (self.window - 1) // self.temporal

    @property
    def head_context(self) -> int:
        """Known frames at the start of a window (whole latent frames, half the window)."""
        return 1 + self.temporal * max(0, (self.latent_window + 1) // 2 - 1)

    def valid_frames(self, frames: int) -> bool:
        return frames >= 1 and (frames - 1) % self.temporal == 0

    def round_frames_up(self, frames: int) -> int:
        return 1 + self.temporal * math.ceil(max(frames - 1, 0) / self.temporal)

    def nearest_size(self, height: int, width: int) -> tuple[int, int]:
        m = self.multiple
        return max(m, round(height / m) * m), max(m, round(width / m) * m)

    def check_size(self, height: int, width: int) -> None:
        if height % self.multiple or width % self.multiple or min(height, width) < self.multiple:
            h, w = self.nearest_size(height, width)
            raise UsageError(
                f"size {width}x{height} is not a multiple of {self.multiple}; nearest valid size: {w}x{h}"
            )

    def check_frames(self, frames: int, what: str = "frames") -> None:
        if not self.valid_frames(frames):
            lo = 1 + self.temporal * max(0, (frames - 1) // self.temporal)
            hi = lo + self.temporal
            raise UsageError(f"{what}={frames} must be 1 + {self.temporal}*k (nearest: {lo} or {hi})")


DEFAULT_TRAINED_SIZE = (9, 32, 32)


def geometry(pipe: Any) -> Geometry:
    """The sizes a pipeline takes: steps from its VAE and DiT configs; the trained window and size from
    ``frames``/``height``/``width`` in its config, else from the DiT's latent ``input_size`` when it
    holds a video size, else 9 frames of 32x32."""
    vae_cfg, dit_cfg = pipe.vae.cfg, pipe.dit.cfg
    temporal, spatial = int(vae_cfg.temporal_factor), int(vae_cfg.spatial_factor)
    config = getattr(pipe, "config", {}) or {}
    frames, height, width = DEFAULT_TRAINED_SIZE
    lt, lh, lw = (int(v) for v in dit_cfg.input_size)
    if lt > 1:
        frames, height, width = 1 + (lt - 1) * temporal, lh * spatial, lw * spatial
    frames = int(config.get("frames", frames))
    height = int(config.get("height", height))
    width = int(config.get("width", width))
    return Geometry(
        window=frames,
        temporal=temporal,
        multiple=spatial * max(int(dit_cfg.patch[1]), int(dit_cfg.patch[2])),
        height=height,
        width=width,
    )


def load_pipeline(path: str | Path | None = None) -> Any:
    """The shipped pipeline (``path=None``) or one from a training run's checkpoint."""
    from fivefold.video.sample import load_pipeline as _load

    return _load(None if path is None else Path(path))


def _generate(
    pipe: Any,
    prompts: Sequence[str],
    frames: int,
    height: int,
    width: int,
    known_frames: Sequence[int] | None = None,
    **kw: Any,
) -> Tensor:
    """The sampler, with known frames given as indices (the same for every clip in the batch)."""
    from fivefold.video.sample import generate

    if known_frames is not None:
        mask = torch.zeros(len(prompts), frames, dtype=torch.bool)
        mask[:, list(known_frames)] = True
        kw["known_frames"] = mask
    out: Tensor = generate(pipe, list(prompts), frames, height, width, **kw)
    return out


def as_batch(video: Tensor, prompts: Sequence[str] | str) -> tuple[Tensor, list[str]]:
    """(3,T,H,W) or (B,3,T,H,W) video and one prompt or one per clip -> a batch and its prompts."""
    if video.dim() == 4:
        video = video[None]
    if video.dim() != 5 or video.shape[1] != 3:
        raise UsageError(f"expected a video shaped (3,T,H,W) or (B,3,T,H,W), got {tuple(video.shape)}")
    texts = [prompts] * video.shape[0] if isinstance(prompts, str) else list(prompts)
    if len(texts) != video.shape[0]:
        raise UsageError(f"{len(texts)} prompts for {video.shape[0]} clips")
    return video.float().clamp(-1, 1), texts


def fit_to_model(video: Tensor, geo: Geometry, what: str = "input") -> Tensor:
    """Resize (cover + centre crop) a batch to the nearest size the model takes, warning when it does."""
    _, _, _, h, w = video.shape
    nh, nw = geo.nearest_size(h, w)
    if (nh, nw) == (h, w):
        return video
    warnings.warn(
        f"{what} is {w}x{h}, which the model cannot take (sizes must be multiples of {geo.multiple}); "
        f"resized to {nw}x{nh}",
        ResizeWarning,
        stacklevel=3,
    )
    return torch.stack([resize_video(clip, nh, nw) for clip in video])


class Sampling(TypedDict, total=False):
    """The sampler settings every capability takes as keywords."""

    steps: int  # default 25
    cfg: float  # classifier-free guidance scale, default PROMPT_CFG or CONTEXT_CFG (see below)
    seed: int  # default 0


# Guidance when only the prompt (or a still image) says what moves, and when known frames already
# show the motion (extend, loop, connect, long's later windows). There the frames condition strongly
# and 4 oversaturates some clips (red and yellow triangles on black lose their background), while 2
# joins cleanly: docs/video-capabilities.md, session 8.
PROMPT_CFG = 4.0
CONTEXT_CFG = 2.0


def _sampling(context: bool = False, **given: Unpack[Sampling]) -> dict[str, Any]:
    steps = given.get("steps", 25)
    if steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    cfg = given.get("cfg", CONTEXT_CFG if context else PROMPT_CFG)
    return {"steps": steps, "cfg": cfg, "seed": given.get("seed", 0)}


# ---------------------------------------------------------------- capabilities


def image(
    pipe: Any,
    prompt: str | Sequence[str],
    height: int | None = None,
    width: int | None = None,
    **sampling: Unpack[Sampling],
) -> Tensor:
    """Single-frame generation: (B, 3, 1, H, W)."""
    geo = geometry(pipe)
    height, width = height or geo.height, width or geo.width
    geo.check_size(height, width)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    return _generate(pipe, prompts, 1, height, width, **_sampling(**sampling))


def animate(
    pipe: Any,
    picture: Tensor,
    prompt: str | Sequence[str],
    frames: int | None = None,
    **sampling: Unpack[Sampling],
) -> Tensor:
    """Image-to-video: a clip whose first frame is ``picture`` ((3,H,W), (B,3,H,W) or (B,3,1,H,W))."""
    geo = geometry(pipe)
    if picture.dim() == 3:
        picture = picture[None]
    if picture.dim() == 4:
        picture = picture[:, :, None]
    video, prompts = as_batch(picture[:, :, :1], prompt)
    video = fit_to_model(video, geo, "image")
    frames = frames if frames is not None else geo.window
    geo.check_frames(frames)
    known = video.expand(-1, -1, frames, -1, -1).contiguous()
    return _generate(
        pipe,
        prompts,
        frames,
        video.shape[3],
        video.shape[4],
        known_video=known,
        known_frames=[0],
        **_sampling(**sampling),
    )


def _window_forward(
    pipe: Any, context: Tensor, prompts: list[str], sampling: dict[str, Any], length: int
) -> Tensor:
    """A ``length``-frame window whose first frames are ``context`` (known); returns the whole window."""
    k = context.shape[2]
    known = torch.cat([context, context[:, :, -1:].expand(-1, -1, length - k, -1, -1)], dim=2)
    h, w = context.shape[3], context.shape[4]
    return _generate(pipe, prompts, length, h, w, known_video=known, known_frames=list(range(k)), **sampling)


def extend(
    pipe: Any,
    video: Tensor,
    prompt: str | Sequence[str],
    frames: int | None = None,
    seconds: float | None = None,
    backward: bool = False,
    loop: bool = False,
    **sampling: Unpack[Sampling],
) -> Tensor:
    """The clip with ``frames`` (or ``seconds`` at :data:`FPS`) new frames after it (or, ``backward``,
    before it). ``loop``: new frames after it that lead back into its first frame, so the result plays
    seamlessly on repeat. Returns the whole clip, input frames unchanged."""
    geo = geometry(pipe)
    clip, prompts = as_batch(video, prompt)
    clip = fit_to_model(clip, geo, "video")
    if seconds is not None:
        if seconds <= 0:
            raise UsageError(f"seconds must be > 0, got {seconds}")
        frames = max(1, round(seconds * FPS))
    if loop and backward:
        raise UsageError("--loop and --backward cannot be combined (a loop joins the end to the start)")
    chosen = _sampling(context=True, **sampling)
    if loop:
        return _loop(pipe, geo, clip, prompts, chosen, frames)
    frames = frames if frames is not None else geo.window - geo.head_context
    if frames < 1:
        raise UsageError(f"frames to add must be >= 1, got {frames}")
    need = geo.head_context
    if clip.shape[2] < need:
        raise UsageError(
            f"the video has {clip.shape[2]} frames; extending needs at least {need} (the conditioning length)"
        )
    if backward:
        # What came before, as what comes after the clip played backwards (see fivefold.video.reversal).
        reverse = [reverse_motion(p) for p in prompts]
        return _extend_forward(pipe, geo, clip.flip(2), reverse, chosen, frames).flip(2)
    return _extend_forward(pipe, geo, clip, prompts, chosen, frames)


def _extend_forward(
    pipe: Any, geo: Geometry, clip: Tensor, prompts: list[str], sampling: dict[str, Any], frames: int
) -> Tensor:
    """``clip`` and ``frames`` new frames after it, one overlapping window at a time."""
    need = geo.head_context
    added = 0
    current = clip
    round_seed = sampling["seed"]
    while added < frames:
        window = _window_forward(
            pipe, current[:, :, -need:], prompts, {**sampling, "seed": round_seed}, geo.window
        )
        new = carry_in(window[:, :, need:], current[:, :, -1], window[:, :, need - 1], geo.temporal)
        current = torch.cat([current, new], dim=2)
        added += new.shape[2]
        round_seed += 1
    return current[:, :, : clip.shape[2] + frames]


def dissolve_weights(frames: int) -> Tensor:
    """(frames,) weights of the forward continuation in a bridge: smoothstep from 1 to 0. From three
    frames on, the first generated frame is the forward continuation's own and the last the backward
    one's, so each join is exactly an extension's join: even a few percent of the other clip shows
    as a step at the join when the two backgrounds differ. Shorter bridges have no room for that,
    so both of their frames mix."""
    u = torch.linspace(0, 1, frames) if frames >= 3 else torch.linspace(0, 1, frames + 2)[1:-1]
    return 1.0 - u * u * (3.0 - 2.0 * u)


def _bridge(
    pipe: Any,
    geo: Geometry,
    before: Tensor,
    after: Tensor,
    prompts: tuple[list[str], list[str]],
    sampling: dict[str, Any],
    frames: int,
) -> Tensor:
    """``frames`` new frames between the clips ``before`` and ``after``: ``before`` continued forward
    and ``after`` continued backward (both from a first-frame context, which the causal VAE renders
    well), cross-dissolved so each join is one of the model's own continuations."""
    forward = _extend_forward(pipe, geo, before, prompts[0], sampling, frames)[:, :, -frames:]
    reverse = [reverse_motion(p) for p in prompts[1]]
    backward_sampling = {**sampling, "seed": sampling["seed"] + BACKWARD_SEED_OFFSET}
    backward = _extend_forward(pipe, geo, after.flip(2), reverse, backward_sampling, frames)
    backward = backward[:, :, -frames:].flip(2)
    w = dissolve_weights(frames).view(1, 1, -1, 1, 1)
    return forward * w + backward * (1.0 - w)


def _loop(
    pipe: Any, geo: Geometry, clip: Tensor, prompts: list[str], sampling: dict[str, Any], frames: int | None
) -> Tensor:
    need = geo.head_context
    if clip.shape[2] < need:
        raise UsageError(
            f"the video has {clip.shape[2]} frames; a loop needs at least {need} (the conditioning length)"
        )
    new = frames if frames is not None else geo.window - 1
    if new < 1:
        raise UsageError(f"frames to add must be >= 1, got {new}")
    return torch.cat([clip, _bridge(pipe, geo, clip, clip, (prompts, prompts), sampling, new)], dim=2)


def long(
    pipe: Any,
    prompt: str | Sequence[str],
    frames: int,
    height: int | None = None,
    width: int | None = None,
    **sampling: Unpack[Sampling],
) -> Tensor:
    """A clip of ``frames`` frames (any count >= 1): one window from the prompt, then forward
    extension with half-window overlapping context until long enough."""
    geo = geometry(pipe)
    height, width = height or geo.height, width or geo.width
    geo.check_size(height, width)
    if frames < 1:
        raise UsageError(f"frames must be >= 1, got {frames}")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    first = geo.window if frames > geo.window else geo.round_frames_up(frames)
    s = _sampling(**sampling)
    clip = _generate(pipe, prompts, first, height, width, **s)
    if frames > clip.shape[2]:
        # the caller's settings as given: extend picks its own guidance default (CONTEXT_CFG)
        later: Sampling = {**sampling, "seed": s["seed"] + 1}
        clip = extend(pipe, clip, prompts, frames=frames - clip.shape[2], **later)
    return clip[:, :, :frames]


def edit(
    pipe: Any,
    video: Tensor,
    prompt: str | Sequence[str],
    strength: float,
    **sampling: Unpack[Sampling],
) -> Tensor:
    """SDEdit: noise the clip's latents to ``strength`` and denoise under the new prompt.
    Strength 0 returns the input unchanged; 1 starts from pure noise and ignores it."""
    if not 0.0 <= strength <= 1.0 or math.isnan(strength):
        raise UsageError(f"strength must be between 0 and 1, got {strength}")
    geo = geometry(pipe)
    clip, prompts = as_batch(video, prompt)
    if strength == 0.0:
        return clip.clone()
    clip = fit_to_model(clip, geo, "video")
    t = clip.shape[2]
    if not geo.valid_frames(t):
        keep = 1 + geo.temporal * ((t - 1) // geo.temporal)
        warnings.warn(
            f"video has {t} frames; edited the first {keep} (1 + {geo.temporal}*k)",
            ResizeWarning,
            stacklevel=2,
        )
        clip = clip[:, :, :keep]
    return _generate(
        pipe,
        prompts,
        clip.shape[2],
        clip.shape[3],
        clip.shape[4],
        init_video=clip,
        strength=strength,
        **_sampling(**sampling),
    )


def connect(
    pipe: Any,
    video_a: Tensor,
    video_b: Tensor,
    frames: int | None = None,
    prompt: str | Sequence[str] = "",
    prompt_a: str | Sequence[str] | None = None,
    **sampling: Unpack[Sampling],
) -> Tensor:
    """A ``frames``-frame transition: A's last frames, new frames, B's first frames. ``prompt``
    describes B's side, ``prompt_a`` A's (default: ``prompt``)."""
    geo = geometry(pipe)
    a, prompts = as_batch(video_a, prompt)
    b, _ = as_batch(video_b, prompts)
    prompts_a = prompts if prompt_a is None else as_batch(a, prompt_a)[1]
    a = fit_to_model(a, geo, "video A")
    b = fit_to_model(b, geo, "video B")
    if a.shape[3:] != b.shape[3:]:
        b = torch.stack([resize_video(clip, a.shape[3], a.shape[4]) for clip in b])
    context = geo.head_context
    frames = frames if frames is not None else geo.window + 2 * context - 1
    if frames < 2 * context + 1:
        raise UsageError(
            f"frames={frames} is below the conditioning length: connect needs at least {2 * context + 1}"
        )
    for name, clip in (("A", a), ("B", b)):
        if clip.shape[2] < context:
            raise UsageError(f"video {name} has {clip.shape[2]} frames; connect needs at least {context}")
    new = frames - 2 * context
    middle = _bridge(pipe, geo, a, b, (prompts_a, prompts), _sampling(context=True, **sampling), new)
    # A's and B's own frames at the ends, as extend keeps the input's: the transition is what is new.
    return torch.cat([a[:, :, -context:], middle, b[:, :, :context]], dim=2)


# ---------------------------------------------------------------- files


def pixel_zoom(video: Tensor, multiple: int = 1, largest: int = 8) -> int:
    """The largest k <= ``largest`` for which every k x k pixel block of every frame is one colour and
    the frame shrunk by k is still a multiple of ``multiple``: the zoom ``fivefold video sample
    --upscale`` applies. 1 when there is none (any camera footage, any lossy mp4)."""
    h, w = video.shape[-2:]
    for k in range(largest, 1, -1):
        if h % k or w % k or (h // k) % multiple or (w // k) % multiple:
            continue
        small = video[..., ::k, ::k]
        if torch.equal(zoom(small, k), video):
            return k
    return 1


def zoom(video: Tensor, k: int) -> Tensor:
    """Nearest-neighbour zoom of the last two (pixel) axes by ``k``."""
    if k == 1:
        return video
    return video.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


def read_video(path: str | Path) -> Tensor:
    """A media file as (1, 3, T, H, W) in [-1, 1]; FivefoldError naming the file if unreadable."""
    return to_tensor(read_media(path))[None]


def write_video(path: str | Path, video: Tensor, fps: int = FPS, upscale: int = 1) -> Path:
    """Write the first clip of a batch (or a (3,T,H,W) clip) as .gif/.mp4/.png, each pixel
    ``upscale`` x ``upscale`` (nearest neighbour)."""
    clip = video[0] if video.dim() == 5 else video
    try:
        return write_media(path, to_frames(clip, upscale), fps=fps)
    except OSError as exc:
        raise FivefoldError(f"cannot write {path}: {exc.strerror or exc}") from exc
