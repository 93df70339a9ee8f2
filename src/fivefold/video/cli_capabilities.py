"""``fivefold video`` commands for evaluation and the Sora capabilities.

Each command is a thin shell over :mod:`fivefold.video.judge`, :mod:`fivefold.video.evaluate` and
:mod:`fivefold.video.capabilities`; the video CLI group adds every command in :data:`COMMANDS`.
Heavy modules (torch) are imported inside the commands so ``fivefold video --help`` stays fast.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from fivefold._common.errors import UsageError
from fivefold._common.jsonout import emit

COMMANDS: list[click.Command] = []


def _command(fn: click.Command) -> click.Command:
    COMMANDS.append(fn)
    return fn


def parse_size(value: str | None) -> tuple[int, int] | None:
    """``"48x32"`` (width x height) -> (height, width)."""
    if value is None:
        return None
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT like 32x32, got {value!r}") from None
    if width < 1 or height < 1:
        raise UsageError(f"--size must be positive, got {value!r}")
    return height, width


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Print library warnings (such as a resize) as one ``warning:`` line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for item in caught:
        click.echo(f"warning: {item.message}", err=True)


@dataclass(frozen=True)
class SamplingRun:
    """The options every generating command shares, handed to it as one ``run`` argument."""

    steps: int
    cfg: float | None  # None: the capability's default (4 from a prompt or image, 2 from frames)
    seed: int
    checkpoint: Path | None
    fps: int
    as_json: bool

    @property
    def sampling(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {"steps": self.steps, "seed": self.seed}
        if self.cfg is not None:
            chosen["cfg"] = self.cfg
        return chosen

    def pipe(self) -> Any:
        return _pipe(self.checkpoint)

    def write(self, out: Path, video: Any, upscale: int = 1, **extra: Any) -> None:
        _write(out, video, self.fps, self.as_json, upscale, **extra)


_RUN_FIELDS = tuple(f.name for f in fields(SamplingRun))


def _sampling_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --steps/--cfg/--seed/--checkpoint/--fps/--json; the command receives them as ``run``."""

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        run = SamplingRun(**{name: kwargs.pop(name) for name in _RUN_FIELDS})
        return fn(run=run, **kwargs)

    options = [
        click.option("--steps", type=int, default=25, show_default=True, help="Sampling steps."),
        click.option(
            "--cfg",
            type=float,
            default=None,
            help="Classifier-free guidance scale (default: 4 from a prompt or an image; 2 where given "
            "frames already show the motion: extend, connect, long's later windows).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--checkpoint",
            type=click.Path(path_type=Path),
            default=None,
            help="A training run's checkpoint (default: the shipped model).",
        ),
        click.option("--fps", type=int, default=8, show_default=True, help="Frame rate of the output file."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    wrapped: Callable[..., Any] = command
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def _write(out: Path, video: Any, fps: int, as_json: bool, upscale: int = 1, **extra: Any) -> None:
    from fivefold.video.capabilities import write_video

    path = write_video(out, video, fps=fps, upscale=upscale)
    report = {
        "out": str(path),
        "frames": int(video.shape[2]),
        "size": f"{video.shape[4] * upscale}x{video.shape[3] * upscale}",
        **extra,
    }
    if as_json:
        emit(report)
    else:
        click.echo(f"wrote {path} ({report['frames']} frames, {report['size']})")


def _unzoom(video: Any, pipe: Any, path: Path) -> tuple[Any, int]:
    """The clip read from ``path`` at the size it was drawn at: a nearest-neighbour zoom (as
    ``sample`` writes by default) is undone, so the model runs at its own scale, and the zoom is
    returned to redo on output."""
    from fivefold.video import capabilities as cap

    k = cap.pixel_zoom(video, cap.geometry(pipe).multiple)
    if k > 1:
        video = video[..., ::k, ::k]
        click.echo(
            f"note: {path} is a {k}x nearest-neighbour zoom; the model runs at "
            f"{video.shape[-1]}x{video.shape[-2]} and the output is zoomed {k}x back",
            err=True,
        )
    return video, k


def _pipe(checkpoint: Path | None) -> Any:
    from fivefold.video.capabilities import load_pipeline

    return load_pipeline(checkpoint)


_PROMPT = click.option("--prompt", required=True)
_VIDEO = click.argument("video_path", metavar="VIDEO", type=click.Path(path_type=Path))


def _generating(name: str, out: str, *params: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Any]:
    """A generating command named ``name``: its own arguments and options (``params``, in order),
    then --out (default ``out``) and the shared sampling options (handed to it as ``run``)."""

    def decorate(fn: Callable[..., Any]) -> click.Command:
        wrapped = _sampling_options(fn)
        out_option = click.option(
            "--out", type=click.Path(path_type=Path), default=Path(out), show_default=True
        )
        wrapped = out_option(wrapped)
        for param in reversed(params):
            wrapped = param(wrapped)
        return _command(click.command(name)(wrapped))

    return decorate


@_command
@click.command("judge-train")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Where to write the weights.")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads.")
@click.option("--json", "as_json", is_flag=True)
def judge_train_cmd(
    out: Path | None, steps: int, batch_size: int, seed: int, threads: int, as_json: bool
) -> None:
    """Train the judge (shape/colour/direction classifier) on synthetic clips."""
    from fivefold.video.judge import DEFAULT_PATH, train_judge

    if steps < 1 or batch_size < 1:
        raise UsageError("--steps and --batch-size must be >= 1")
    target = out or DEFAULT_PATH
    meta = train_judge(
        target,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        threads=threads,
        log=None if as_json else click.echo,
    )
    if as_json:
        emit({"out": str(target), **meta})
    else:
        acc = meta["held_out_accuracy"]
        click.echo(
            f"wrote {target}: held-out accuracy shape {acc['shape']:.3f} color {acc['color']:.3f} "
            f"direction {acc['direction']:.3f} all {acc['all']:.3f}"
        )


@_command
@click.command("eval")
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.option("--samples", type=int, default=48, show_default=True, help="Generated clips to score.")
@click.option("--frames", type=int, default=None, help="Frames per clip (default: the trained length).")
@click.option("--size", default=None, help="WIDTHxHEIGHT (default: the trained size).")
@click.option("--trained-combos", is_flag=True, help="Prompt trained combinations instead of held-out ones.")
@click.option("--judge", "judge_path", type=click.Path(path_type=Path), default=None, help="Judge weights.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--steps", type=int, default=25, show_default=True)
@click.option("--cfg", type=float, default=4.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(
    checkpoint: Path | None,
    samples: int,
    frames: int | None,
    size: str | None,
    trained_combos: bool,
    judge_path: Path | None,
    batch_size: int,
    steps: int,
    cfg: float,
    seed: int,
    as_json: bool,
) -> None:
    """Score a checkpoint (default: the shipped one): judge accuracy on prompted attributes,
    Frechet distance to real clips in the judge's features, temporal consistency."""
    from fivefold.video.evaluate import evaluate_pipeline
    from fivefold.video.judge import load_judge

    if samples < 2:
        raise UsageError("--samples must be >= 2")
    judge = load_judge(judge_path)
    pipe = _pipe(checkpoint)
    report = evaluate_pipeline(
        pipe,
        judge,
        samples=samples,
        frames=frames,
        size=parse_size(size),
        held_out=not trained_combos,
        batch_size=batch_size,
        steps=steps,
        cfg=cfg,
        seed=seed,
    )
    if as_json:
        emit(report)
        return
    acc, temporal = report["accuracy"], report["temporal"]
    dims = report["size"]
    click.echo(
        f"{report['clips']} clips of {dims['frames']} frames at {dims['width']}x{dims['height']}, "
        f"prompts from {report['combos']} combinations"
    )
    click.echo(
        f"judge accuracy: shape {acc['shape']:.3f}  color {acc['color']:.3f}  "
        f"direction {acc['direction']:.3f}  all three {acc['all']:.3f}"
    )
    click.echo(
        f"Frechet distance (judge features): {report.get('frechet', float('nan')):.3f} "
        f"(two real sets of this size: {report['frechet_real_floor']:.3f})"
    )
    click.echo(
        f"temporal: path error {temporal['path_error']:.4f} of the frame, "
        f"flicker {temporal['flicker']:.2f}/255, object found in {temporal['object_found']:.0%} of clips"
    )


@_generating(
    "image",
    "image.png",
    _PROMPT,
    click.option("--size", default=None, help="WIDTHxHEIGHT (default: the trained size)."),
)
def image_cmd(prompt: str, size: str | None, out: Path, run: SamplingRun) -> None:
    """Generate a single frame."""
    from fivefold.video import capabilities as cap

    hw = parse_size(size)
    with _warnings_to_stderr():
        height, width = hw or (None, None)
        video = cap.image(run.pipe(), prompt, height, width, **run.sampling)
    run.write(out, video)


@_generating(
    "animate",
    "animated.gif",
    click.argument("image_path", metavar="IMAGE", type=click.Path(path_type=Path)),
    _PROMPT,
    click.option("--frames", type=int, default=None, help="Frames (default: the trained length)."),
)
def animate_cmd(image_path: Path, prompt: str, frames: int | None, out: Path, run: SamplingRun) -> None:
    """Image-to-video: a clip whose first frame is IMAGE."""
    from fivefold.video import capabilities as cap

    picture = cap.read_video(image_path)
    pipe = run.pipe()
    picture, k = _unzoom(picture, pipe, image_path)
    with _warnings_to_stderr():
        video = cap.animate(pipe, picture[:, :, 0], prompt, frames=frames, **run.sampling)
    run.write(out, video, upscale=k)


@_generating(
    "extend",
    "extended.gif",
    _VIDEO,
    _PROMPT,
    click.option("--backward", is_flag=True, help="Generate what came before the clip."),
    click.option("--seconds", type=float, default=None, help="Seconds to add (at 8 frames per second)."),
    click.option("--frames", type=int, default=None, help="Frames to add (instead of --seconds)."),
    click.option("--loop", is_flag=True, help="Add frames that lead back into the first frame."),
)
def extend_cmd(
    video_path: Path,
    prompt: str,
    backward: bool,
    seconds: float | None,
    frames: int | None,
    loop: bool,
    out: Path,
    run: SamplingRun,
) -> None:
    """Continue VIDEO forward (or --backward), or make it --loop."""
    from fivefold.video import capabilities as cap

    if seconds is not None and frames is not None:
        raise UsageError("give --seconds or --frames, not both")
    clip = cap.read_video(video_path)
    pipe = run.pipe()
    clip, k = _unzoom(clip, pipe, video_path)
    with _warnings_to_stderr():
        video = cap.extend(
            pipe,
            clip,
            prompt,
            frames=frames,
            seconds=seconds,
            backward=backward,
            loop=loop,
            **run.sampling,
        )
    run.write(out, video, upscale=k, added=int(video.shape[2] - clip.shape[2]))


@_generating(
    "long",
    "long.gif",
    _PROMPT,
    click.option("--frames", type=int, required=True, help="Total frames (longer than the trained length)."),
    click.option("--size", default=None, help="WIDTHxHEIGHT (default: the trained size)."),
)
def long_cmd(prompt: str, frames: int, size: str | None, out: Path, run: SamplingRun) -> None:
    """A long clip by autoregressive extension with overlapping windows."""
    from fivefold.video import capabilities as cap

    hw = parse_size(size)
    with _warnings_to_stderr():
        video = cap.long(
            run.pipe(),
            prompt,
            frames,
            hw[0] if hw else None,
            hw[1] if hw else None,
            **run.sampling,
        )
    run.write(out, video)


@_generating(
    "edit",
    "edited.gif",
    _VIDEO,
    _PROMPT,
    click.option("--strength", type=float, required=True, help="0 keeps the input, 1 ignores it."),
)
def edit_cmd(video_path: Path, prompt: str, strength: float, out: Path, run: SamplingRun) -> None:
    """SDEdit video-to-video: re-generate VIDEO under a new prompt."""
    from fivefold.video import capabilities as cap

    clip = cap.read_video(video_path)
    pipe = run.pipe()
    clip, k = _unzoom(clip, pipe, video_path)
    with _warnings_to_stderr():
        video = cap.edit(pipe, clip, prompt, strength, **run.sampling)
    run.write(out, video, upscale=k, strength=strength)


@_generating(
    "connect",
    "connected.gif",
    click.argument("video_a", metavar="VIDEO_A", type=click.Path(path_type=Path)),
    click.argument("video_b", metavar="VIDEO_B", type=click.Path(path_type=Path)),
    click.option(
        "--frames",
        type=int,
        default=None,
        help="Frames in all: A's last frames, the new ones, B's first ones (shipped model: 5 + 8 + 5).",
    ),
    click.option("--prompt", default="", help="What VIDEO_B shows (optional)."),
    click.option("--prompt-a", default=None, help="What VIDEO_A shows (default: --prompt)."),
)
def connect_cmd(
    video_a: Path,
    video_b: Path,
    frames: int | None,
    prompt: str,
    prompt_a: str | None,
    out: Path,
    run: SamplingRun,
) -> None:
    """A transition starting with VIDEO_A's last frames and ending with VIDEO_B's first."""
    from fivefold.video import capabilities as cap

    a, b = cap.read_video(video_a), cap.read_video(video_b)
    pipe = run.pipe()
    (a, k), (b, _) = _unzoom(a, pipe, video_a), _unzoom(b, pipe, video_b)
    with _warnings_to_stderr():
        video = cap.connect(pipe, a, b, frames=frames, prompt=prompt, prompt_a=prompt_a, **run.sampling)
    run.write(out, video, upscale=k)
