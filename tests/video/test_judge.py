"""The shipped judge reads shape, colour and direction of real clips at any size and length."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fivefold._common.errors import FivefoldError
from fivefold.video.data import ATTRIBUTES, HELD_OUT_COMBOS, ClipSpec, render_clip, to_tensor
from fivefold.video.evaluate import attribute_accuracy, real_clips
from fivefold.video.judge import DEFAULT_PATH, HEADS, JudgeConfig, load_judge, prepare, train_judge


@pytest.fixture(scope="module")
def judge():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return load_judge()


def test_shipped_weights_are_small_and_documented() -> None:
    assert DEFAULT_PATH.stat().st_size < 2_000_000
    meta = load_judge().meta
    assert meta["held_out_accuracy"]["all"] >= 0.98
    assert "judge-train" in meta["command"]


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(9, 32, 32), (17, 32, 32), (5, 24, 40), (12, 48, 32), (9, 64, 64)],
)
def test_judge_reads_fresh_clips(judge, frames: int, height: int, width: int) -> None:  # type: ignore[no-untyped-def]
    videos, attrs = real_clips(48, frames, height, width, seed=frames * 1000 + height + width)
    accuracy = attribute_accuracy(judge.predict(videos), attrs)
    assert accuracy["all"] >= 0.93, accuracy
    assert min(accuracy[k] for k in HEADS) >= 0.95, accuracy


def test_judge_reads_held_out_combinations(judge) -> None:  # type: ignore[no-untyped-def]
    videos, attrs = real_clips(24, 9, 32, 32, seed=5, combos=sorted(HELD_OUT_COMBOS))
    assert attribute_accuracy(judge.predict(videos), attrs)["all"] >= 0.95


def test_predict_and_features_formats(judge) -> None:  # type: ignore[no-untyped-def]
    clip = to_tensor(render_clip(ClipSpec("triangle", "green", "down", size="large"), 9, 32, 32))
    (prediction,) = judge.predict(clip[None])
    assert prediction == {"shape": "triangle", "color": "green", "direction": "down"}
    assert set(prediction.values()) <= {v for k in HEADS for v in ATTRIBUTES[k]}
    feats = judge.features(torch.stack([clip, clip.flip(-1)]))
    assert feats.shape == (2, JudgeConfig().features) and torch.isfinite(feats).all()
    # The same clip reversed in time moves the other way.
    assert judge.predict(clip.flip(1)[None])[0]["direction"] == "up"


def test_prepare_resamples_any_input() -> None:
    video = torch.rand(2, 3, 13, 20, 50) * 2 - 1
    out = prepare(video, frames=8, size=32)
    assert out.shape == (2, 3, 8, 32, 32)
    # First and last frames are kept (up to the spatial resize).
    assert torch.allclose(out[:, :, 0], prepare(video[:, :, :1], 1, 32)[:, :, 0], atol=1e-5)
    assert prepare(torch.zeros(3, 1, 32, 32)).shape == (1, 3, 8, 32, 32)
    with pytest.raises(ValueError, match="expected"):
        prepare(torch.zeros(2, 4, 5, 8, 8))


def test_train_judge_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "judge.pt"
    meta = train_judge(out, steps=2, batch_size=4, eval_size=8, config=JudgeConfig(width=8, features=16))
    assert out.is_file() and not list(tmp_path.glob(".tmp-*"))
    judge = load_judge(out)
    assert judge.config.width == 8 and set(meta["held_out_accuracy"]) == {*HEADS, "all"}
    assert len(judge.predict(torch.zeros(3, 3, 4, 16, 16))) == 3


def test_load_judge_errors(tmp_path: Path) -> None:
    with pytest.raises(FivefoldError, match="judge-train"):
        load_judge(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(FivefoldError, match=r"bad\.pt"):
        load_judge(tmp_path / "bad.pt")
