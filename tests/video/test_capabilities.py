"""Capabilities on a tiny randomly initialised pipeline: shapes, known frames, strength ends,
determinism, bad input; and the commands end to end on a saved tiny checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from fivefold._common.errors import FivefoldError, UsageError
from fivefold.cli import main
from fivefold.video import capabilities as cap
from fivefold.video.data import (
    ALL_COMBOS,
    ClipSpec,
    canonical_caption,
    render_clip,
    to_tensor,
)
from fivefold.video.demo import capabilities_demo
from fivefold.video.diffusion import DiffusionConfig
from fivefold.video.dit import DiT, DiTConfig
from fivefold.video.folder import read_media
from fivefold.video.media import write_media
from fivefold.video.reversal import reverse_motion
from fivefold.video.sample import Pipeline
from fivefold.video.text import TEXT_DIM, TextEncoder
from fivefold.video.vae import VAEConfig, VideoVAE

STEPS = 2


class AnyPrompt(dict):  # type: ignore[type-arg]
    """A text cache that holds every prompt: a fixed random embedding per string (no model load)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "little")
        g = torch.Generator().manual_seed(seed)
        value = (torch.randn(4, TEXT_DIM, generator=g).half(), torch.randn(TEXT_DIM, generator=g))
        self[prompt] = value
        return value


def tiny_parts() -> tuple[VideoVAE, DiT]:
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(latent_channels=4, spatial_factor=4, temporal_factor=4, channels=(8, 8, 8)))
    dit = DiT(DiTConfig(hidden=32, depth=1, heads=2, patch=(1, 2, 2), latent_channels=4))
    with torch.no_grad():  # adaLN-Zero starts as the zero map; make the model do something
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return vae.eval(), dit.eval()


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    torch.set_num_threads(1)
    vae, dit = tiny_parts()
    text = TextEncoder()
    text.cache = AnyPrompt()
    return Pipeline(
        vae, dit, text, DiffusionConfig(), {"frames": 9, "height": 16, "width": 16, "null_prompt": ""}
    )


def clip(frames: int = 9, size: tuple[int, int] = (16, 16), direction: str = "right") -> torch.Tensor:
    spec = ClipSpec("square", "red", direction, size="large", speed="fast")
    return to_tensor(render_clip(spec, frames, *size))[None]


def test_geometry(pipe: Pipeline) -> None:
    geo = cap.geometry(pipe)
    assert (geo.window, geo.temporal, geo.multiple) == (9, 4, 8)
    assert geo.head_context == 5
    with pytest.raises(UsageError, match="nearest valid size: 16x16"):
        geo.check_size(20, 20)
    with pytest.raises(UsageError, match="nearest: 9 or 13"):
        geo.check_frames(11)


def test_image_is_one_frame_and_deterministic(pipe: Pipeline) -> None:
    a = cap.image(pipe, ["a red square", "a blue circle"], steps=STEPS, seed=3)
    b = cap.image(pipe, ["a red square", "a blue circle"], steps=STEPS, seed=3)
    c = cap.image(pipe, ["a red square", "a blue circle"], steps=STEPS, seed=4)
    assert a.shape == (2, 3, 1, 16, 16) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert cap.image(pipe, "a red square", 16, 24, steps=STEPS).shape == (1, 3, 1, 16, 24)


def test_animate_keeps_the_image_as_frame_zero(pipe: Pipeline) -> None:
    picture = clip()[:, :, 0]
    video = cap.animate(pipe, picture, "a red square moving right", steps=STEPS)
    assert video.shape == (1, 3, 9, 16, 16)
    # Frame 0 is the VAE's own reconstruction of the image: known latents are kept, and the causal
    # decoder's first frame depends on the first latent only.
    with torch.no_grad():
        recon = pipe.vae.decode(pipe.vae.encode(picture[:, :, None])).clamp(-1, 1)[:, :, 0]
    assert torch.allclose(video[:, :, 0], recon, atol=1e-5)


def test_extend_forward_backward_keeps_the_input(pipe: Pipeline) -> None:
    source = clip(9)
    forward = cap.extend(pipe, source, "a red square moving right", frames=6, steps=STEPS)
    assert forward.shape[2] == 15 and torch.equal(forward[:, :, :9], source)
    backward = cap.extend(pipe, source, "a red square moving right", frames=5, backward=True, steps=STEPS)
    assert backward.shape[2] == 14 and torch.equal(backward[:, :, -9:], source)
    by_seconds = cap.extend(pipe, source, "a red square moving right", seconds=1.0, steps=STEPS)
    assert by_seconds.shape[2] == 9 + cap.FPS
    looped = cap.extend(pipe, source, "a red square moving right", loop=True, steps=STEPS)
    assert looped.shape[2] == 9 + 8 and torch.equal(looped[:, :, :9], source)
    assert cap.extend(pipe, source, "x", loop=True, frames=3, steps=STEPS).shape[2] == 12


def test_backward_is_the_reversed_clip_extended_forward(pipe: Pipeline) -> None:
    source = clip(9)
    backward = cap.extend(
        pipe, source, "a red square moving right", frames=4, backward=True, steps=STEPS, seed=5
    )
    reversed_forward = cap.extend(
        pipe, source.flip(2), "a red square moving left", frames=4, steps=STEPS, seed=5
    )
    assert torch.equal(backward, reversed_forward.flip(2))


def test_reverse_motion_swaps_direction_words() -> None:
    assert reverse_motion("a red circle moving left") == "a red circle moving right"
    assert reverse_motion("Upwards, towards the top") == "Downwards, towards the bottom"
    assert reverse_motion("a box drifting towards the RIGHT edge") == "a box drifting towards the LEFT edge"
    assert reverse_motion("a leftover upgrade") == "a leftover upgrade"  # whole words only
    for prompt in ("a red circle moving left", "rising and falling forwards"):
        assert reverse_motion(reverse_motion(prompt)) == prompt


def test_dissolve_weights_ease_from_one_side_to_the_other() -> None:
    w = cap.dissolve_weights(8)
    assert w.shape == (8,) and bool((w[1:] < w[:-1]).all())
    assert w[0] == 1.0 and w[-1] == 0.0  # each end is one continuation's own frame
    assert torch.allclose(w + w.flip(0), torch.ones(8))
    assert w[1] > 0.9 and w[-2] < 0.1  # smoothstep: the fade starts gently
    for short in (1, 2):  # no room for pure ends: both frames mix
        ws = cap.dissolve_weights(short)
        assert bool(((ws > 0) & (ws < 1)).all()) and torch.allclose(ws + ws.flip(0), torch.ones(short))


def test_long_reaches_any_length(pipe: Pipeline) -> None:
    for frames in (5, 21):
        video = cap.long(pipe, "a blue circle moving down", frames, steps=STEPS, seed=1)
        assert video.shape == (1, 3, frames, 16, 16)
    a = cap.long(pipe, "a blue circle moving down", 21, steps=STEPS, seed=1)
    assert torch.equal(a, cap.long(pipe, "a blue circle moving down", 21, steps=STEPS, seed=1))


def test_edit_strength_ends(pipe: Pipeline) -> None:
    source, other = clip(9), clip(9, direction="left")
    same = cap.edit(pipe, source, "a green square moving right", 0.0, steps=STEPS)
    assert torch.equal(same, source)
    free_a = cap.edit(pipe, source, "a green square moving right", 1.0, steps=STEPS)
    free_b = cap.edit(pipe, other, "a green square moving right", 1.0, steps=STEPS)
    assert torch.equal(free_a, free_b)  # strength 1 ignores the input
    half = cap.edit(pipe, source, "a green square moving right", 0.5, steps=STEPS)
    assert half.shape == source.shape and not torch.equal(half, free_a)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UsageError, match="strength must be between 0 and 1"):
            cap.edit(pipe, source, "x", bad)


def test_connect_dissolves_a_forward_into_b_backward(pipe: Pipeline) -> None:
    a, b = clip(9), clip(9, direction="left")
    bridge = cap.connect(pipe, a, b, frames=17, prompt="a red square moving left", steps=STEPS, seed=2)
    assert bridge.shape == (1, 3, 17, 16, 16)
    context = cap.geometry(pipe).head_context
    assert torch.equal(bridge[:, :, :context], a[:, :, -context:])
    assert torch.equal(bridge[:, :, -context:], b[:, :, :context])
    new = 17 - 2 * context
    after_a = cap.extend(pipe, a, "a red square moving left", frames=new, steps=STEPS, seed=2)[:, :, 9:]
    before_b = cap.extend(
        pipe,
        b,
        "a red square moving left",
        frames=new,
        backward=True,
        steps=STEPS,
        seed=2 + cap.BACKWARD_SEED_OFFSET,
    )[:, :, :new]
    w = cap.dissolve_weights(new).view(1, 1, -1, 1, 1)
    assert torch.allclose(bridge[:, :, context:-context], after_a * w + before_b * (1 - w), atol=1e-6)
    # the joins are the extensions' own frames
    assert torch.allclose(bridge[:, :, context], after_a[:, :, 0], atol=1e-6)
    assert torch.allclose(bridge[:, :, -context - 1], before_b[:, :, -1], atol=1e-6)
    with_a = cap.connect(pipe, a, b, frames=17, prompt="x", prompt_a="a red square", steps=STEPS, seed=2)
    assert not torch.equal(with_a, cap.connect(pipe, a, b, frames=17, prompt="x", steps=STEPS, seed=2))
    assert cap.connect(pipe, a, b, frames=15, steps=STEPS).shape[2] == 15
    for short in (0, 10):
        with pytest.raises(UsageError, match="below the conditioning length"):
            cap.connect(pipe, a, b, frames=short)


def test_bad_inputs(pipe: Pipeline) -> None:
    with pytest.raises(UsageError, match="conditioning length"):
        cap.extend(pipe, clip(3), "x", frames=4)
    with pytest.raises(UsageError, match="--loop and --backward"):
        cap.extend(pipe, clip(9), "x", loop=True, backward=True)
    with pytest.raises(UsageError, match="frames=0 must be 1 \\+ 4\\*k"):
        cap.animate(pipe, clip(1)[:, :, 0], "x", frames=0)
    with pytest.raises(UsageError, match="not a multiple of 8"):
        cap.image(pipe, "x", 20, 20)
    with pytest.raises(UsageError, match="2 prompts for 1 clips"):
        cap.edit(pipe, clip(9), ["a", "b"], 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = cap.animate(pipe, clip(1, (18, 22))[:, :, 0], "x", steps=1)
    assert out.shape[3:] == (16, 24)
    assert any("resized to 24x16" in str(w.message) for w in caught)


# ---------------------------------------------------------------- commands


def save_tiny_checkpoint(path: Path) -> Path:
    vae, dit = tiny_parts()
    blob: dict[str, Any] = {
        "kind": "pipeline",
        "config": dit.cfg.identity(),
        "dit": dit.state_dict(),
        "vae": {"config": vae.cfg.to_dict(), "model": vae.state_dict()},
        "diffusion": dataclasses.asdict(DiffusionConfig()),
        "meta": {"frames": 9, "height": 16, "width": 16},
        "null_prompt": "",
        "text_cache": AnyPrompt(),
    }
    for prompt in ("", "a red square moving right", "a green square", *map(canonical_caption, ALL_COMBOS)):
        blob["text_cache"][prompt]
    blob["text_cache"] = dict(blob["text_cache"])
    torch.save(blob, path)
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["video", *args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_commands_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    src = write_media(tmp_path / "src.gif", render_clip(ClipSpec("square", "red", "right"), 9, 16, 16))
    common = ["--checkpoint", str(ckpt), "--steps", "1"]
    prompt = ["--prompt", "a red square moving right"]
    code, out, _ = run(
        ["extend", str(src), *prompt, "--frames", "4", "--out", str(tmp_path / "e.gif"), "--json", *common],
        capsys,
    )
    assert code == 0 and '"frames": 13' in out and read_media(tmp_path / "e.gif").shape[0] == 13
    code, out, _ = run(
        ["image", "--prompt", "a green square", "--out", str(tmp_path / "i.png"), *common], capsys
    )
    assert code == 0 and read_media(tmp_path / "i.png").shape == (1, 16, 16, 3)
    code, _, err = run(["edit", str(src), *prompt, "--strength", "1.5", *common], capsys)
    assert code == 2 and err.strip() == "fivefold video: strength must be between 0 and 1, got 1.5"
    code, _, err = run(["animate", str(tmp_path / "missing.png"), *prompt, *common], capsys)
    assert code == 1 and "cannot read" in err and "missing.png" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["image", "--prompt", "a green square", "--size", "20x20", *common], capsys)
    assert code == 2 and "nearest valid size: 16x16" in err
    code, _, err = run(["long", *prompt, "--frames", "9", "--size", "big", *common], capsys)
    assert code == 2 and "WIDTHxHEIGHT" in err


def test_pixel_zoom_finds_a_nearest_neighbour_zoom() -> None:
    source = clip(9)
    assert cap.pixel_zoom(source) == 1
    assert cap.pixel_zoom(cap.zoom(source, 4), multiple=8) == 4
    assert torch.equal(cap.zoom(source, 4)[..., ::4, ::4], source)
    # 12x12 zoomed 4x: shrinking by 4 gives 12, not a multiple of 8; by 2 gives 24, which is
    twelve = clip(9, (12, 12))
    assert cap.pixel_zoom(cap.zoom(twelve, 4), multiple=8) == 2
    assert cap.pixel_zoom(torch.rand(1, 3, 2, 32, 32)) == 1


def test_commands_undo_and_redo_a_zoom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    frames = render_clip(ClipSpec("square", "red", "right"), 9, 16, 16)
    src = write_media(tmp_path / "big.gif", frames.repeat(4, axis=1).repeat(4, axis=2))
    args = ["extend", str(src), "--prompt", "a red square moving right", "--frames", "4", "--steps", "1"]
    code, _, err = run([*args, "--checkpoint", str(ckpt), "--out", str(tmp_path / "e.gif")], capsys)
    assert code == 0 and "4x nearest-neighbour zoom; the model runs at 16x16" in err
    out = read_media(tmp_path / "e.gif")
    assert out.shape == (13, 64, 64, 3)
    assert (out[:9] == read_media(src)).all()
    assert (out == out[:, ::4, ::4].repeat(4, axis=1).repeat(4, axis=2)).all()


def test_read_video_errors(tmp_path: Path) -> None:
    (tmp_path / "x.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(FivefoldError, match="cannot read"):
        cap.read_video(tmp_path / "x.gif")


def test_capabilities_demo_writes_every_file(pipe: Pipeline, tmp_path: Path) -> None:
    result = capabilities_demo(tmp_path, pipe=pipe, steps=1)
    assert set(result) == {f"capabilities {k}" for k in ("image", "animate", "extend", "side-by-side")}
    for path in result.values():
        assert Path(path).is_file()
    side = read_media(result["capabilities side-by-side"])
    extended = read_media(result["capabilities extend"])
    assert side.shape[0] == extended.shape[0] and side.shape[2] == 3 * 16 + 2 * 2


def test_eval_command_reports_every_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    torch.set_num_threads(1)
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    code, out, err = run(
        ["eval", str(ckpt), "--samples", "4", "--batch-size", "4", "--steps", "1", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["clips"] == 4 and report["combos"] == "held-out"
    assert set(report["accuracy"]) == {"shape", "color", "direction", "all"}
    assert report["frechet"] >= 0 and set(report["temporal"]) == {"path_error", "flicker", "object_found"}
    code, _, err = run(["eval", str(ckpt), "--samples", "4", "--frames", "10"], capsys)
    assert code == 2 and "frames=10" in err


def test_guidance_defaults_to_context_cfg_where_frames_show_the_motion(pipe: Pipeline) -> None:
    prompt = "a red square moving left"
    a, b = clip(9), clip(9, direction="left")
    extended = cap.extend(pipe, a, prompt, frames=4, steps=STEPS, seed=1)
    context_cfg = cap.extend(pipe, a, prompt, frames=4, steps=STEPS, seed=1, cfg=cap.CONTEXT_CFG)
    assert torch.equal(extended, context_cfg)
    assert not torch.equal(extended, cap.extend(pipe, a, prompt, frames=4, steps=STEPS, seed=1, cfg=4.0))
    joined = cap.connect(pipe, a, b, frames=13, prompt=prompt, steps=STEPS, seed=1)
    assert torch.equal(joined, cap.connect(pipe, a, b, frames=13, prompt=prompt, steps=STEPS, seed=1, cfg=2))
    # animate has only a still: the prompt's guidance
    still = a[:, :, 0]
    animated = cap.animate(pipe, still, prompt, steps=STEPS, seed=1)
    assert torch.equal(animated, cap.animate(pipe, still, prompt, steps=STEPS, seed=1, cfg=cap.PROMPT_CFG))
    # long: the first window from the prompt (4), the windows after it from frames (2)
    geo = cap.geometry(pipe)
    frames = geo.window + 4
    first = cap._generate(pipe, [prompt], geo.window, geo.height, geo.width, steps=STEPS, seed=1, cfg=4.0)
    by_hand = cap.extend(pipe, first, prompt, frames=4, steps=STEPS, seed=2, cfg=2.0)
    assert torch.equal(cap.long(pipe, prompt, frames, steps=STEPS, seed=1), by_hand)


def test_cli_leaves_guidance_to_the_capability_unless_given() -> None:
    from fivefold.video.cli_capabilities import SamplingRun

    run = SamplingRun(steps=3, cfg=None, seed=5, checkpoint=None, fps=8, as_json=False)
    assert run.sampling == {"steps": 3, "seed": 5}
    assert dataclasses.replace(run, cfg=3.0).sampling == {"steps": 3, "seed": 5, "cfg": 3.0}
