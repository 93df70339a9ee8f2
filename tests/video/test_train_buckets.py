"""Size buckets in DiT training (opt-in): one latent cache per size, one bucket per step."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from fivefold._common.errors import UsageError
from fivefold.cli import main
from fivefold.video.data import MovingShapesDataset
from fivefold.video.latents import LatentCache, load_buckets
from fivefold.video.text import TextEncoder
from fivefold.video.train import TrainConfig, step_bucket, train
from fivefold.video.trainloop import atomic_save, load_checkpoint
from fivefold.video.vae import VideoVAE

from .conftest import TINY_DIT, TINY_VAE, fake_buckets, fake_cache, fake_text

TC = TrainConfig(steps=8, batch_size=4, lr=1e-3, warmup=2, ckpt_every=4, log_every=1, image_every=3)
# latent (T, H, W): a video bucket, a wider one, and images
SIZES = [(3, 4, 4), (3, 4, 6), (1, 4, 4)]


def caches(sizes: list[tuple[int, int, int]] = SIZES) -> list[LatentCache]:
    return fake_buckets(tuple(sizes), n=8)


def test_bucketed_run_uses_every_bucket_and_resumes_exactly(tmp_path: Path) -> None:
    full = train(tmp_path / "a", caches(), TINY_DIT, TC)
    assert all(math.isfinite(v) for v in full["losses"]) and len(full["losses"]) == 8
    assert full["bucket_steps"] == [sum(step_bucket(TC, s, 3) == k for s in range(8)) for k in range(3)]
    assert min(full["bucket_steps"]) >= 1, full["bucket_steps"]
    train(tmp_path / "b", caches(), TINY_DIT, TC, stop_after=4)
    rest = train(tmp_path / "b", caches(), TINY_DIT, TC, resume=True)
    a, b = load_checkpoint(tmp_path / "a" / "dit.pt"), load_checkpoint(tmp_path / "b" / "dit.pt")
    assert rest["losses"] == full["losses"][4:]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["train_config"]["buckets"] == [[3, 4, 4], [3, 4, 6], [1, 4, 4]]
    with pytest.raises(UsageError, match=r"training run of another config: buckets="):
        train(tmp_path / "b", caches(SIZES[:2]), TINY_DIT, TC, resume=True)


def test_bucket_draw_is_uniform_and_independent_of_the_batch_stream() -> None:
    counts = [0, 0, 0]
    for step in range(3000):
        counts[step_bucket(TC, step, 3)] += 1
    assert all(900 < c < 1100 for c in counts), counts
    assert {step_bucket(TC, s, 1) for s in range(50)} == {0}


def test_default_run_saves_the_same_fields_as_before(tmp_path: Path) -> None:
    train(tmp_path, fake_cache(), TINY_DIT, dataclasses.replace(TC, steps=1))
    saved = load_checkpoint(tmp_path / "dit.pt")["train_config"]
    later = {"fused_adamw", "mask_weights", "object_weight"}  # options added after runs were saved
    assert "buckets" not in saved and not later & set(saved)
    assert set(saved) == {f.name for f in dataclasses.fields(TrainConfig)} - later
    weighted = dataclasses.replace(TC, steps=1, mask_weights=(4.0, 1.0, 1.0, 1.0))
    train(tmp_path / "w", fake_cache(), TINY_DIT, weighted)
    assert load_checkpoint(tmp_path / "w" / "dit.pt")["train_config"]["mask_weights"] == (4.0, 1.0, 1.0, 1.0)


def test_fused_adamw_is_recorded_and_trains(tmp_path: Path) -> None:
    tc = dataclasses.replace(TC, steps=2, fused_adamw=True)
    out = train(tmp_path, fake_cache(), TINY_DIT, tc)
    assert all(math.isfinite(v) for v in out["losses"])
    assert load_checkpoint(tmp_path / "dit.pt")["train_config"]["fused_adamw"] is True
    with pytest.raises(UsageError, match="fused_adamw=True"):
        train(tmp_path, fake_cache(), TINY_DIT, dataclasses.replace(tc, fused_adamw=False), resume=True)


def test_cli_builds_one_cache_per_bucket_and_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    vae_path = tmp_path / "vae.pt"
    atomic_save(
        {"kind": "vae", "config": TINY_VAE.to_dict(), "model": VideoVAE(TINY_VAE).state_dict()}, vae_path
    )
    buckets = [(5, 16, 16), (5, 16, 24), (1, 16, 16)]
    ds = MovingShapesDataset(length=6, seed=0, buckets=buckets)
    text = TextEncoder(tmp_path / "text.pt")  # every caption pre-embedded: no encoder load
    for prompt in ["", *(ds.spec(i)[1] for i in range(6))]:
        text.cache[prompt] = fake_text(prompt)
    text.save()
    common = ["video", "train", "--vae", str(vae_path), "--out", str(tmp_path / "run")]
    common += ["--text-cache", str(tmp_path / "text.pt"), "--clips", "6", "--hidden", "32", "--depth", "1"]
    common += ["--heads", "2", "--batch", "2", "--steps", "3", "--ckpt-every", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--buckets", "5x16x16,5x16x24,1x16x16"])
    assert exit_info.value.code in (0, None), capsys.readouterr()
    assert "trained to step 3" in capsys.readouterr().out
    loaded = load_buckets(tmp_path / "run" / "latents.pt", buckets)
    assert [tuple(c.latents.shape[2:]) for c in loaded] == [(2, 4, 4), (2, 4, 6), (1, 4, 4)]
    assert [len(c) for c in loaded] == [2, 2, 2]
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--buckets", "5x16x16,5x15x16", "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 2
    assert "--buckets 5x15x16: height=15 must be a multiple of 8" in capsys.readouterr().err
    # The same cache with a VAE finalised at another latent scale: the DiT would learn latents
    # that the checkpoint's VAE then decodes wrongly.
    rescaled = tmp_path / "vae_rescaled.pt"
    atomic_save({"kind": "vae", "config": {**TINY_VAE.to_dict(), "scale": 2.5},
                 "model": VideoVAE(TINY_VAE).state_dict()}, rescaled)
    again = [*common, "--buckets", "5x16x16,5x16x24,1x16x16", "--cache", str(tmp_path / "run" / "latents.pt")]
    again[again.index(str(vae_path))] = str(rescaled)
    with pytest.raises(SystemExit) as exit_info:
        main([*again, "--out", str(tmp_path / "other")])
    assert exit_info.value.code == 2
    assert "was encoded at latent scale" in capsys.readouterr().err
    # a deeper second stage from the command line
    deeper = [*common, "--buckets", "5x16x16,5x16x24,1x16x16"]
    deeper += ["--cache", str(tmp_path / "run" / "latents.pt")]
    deeper += ["--out", str(tmp_path / "deeper"), "--init", str(tmp_path / "run" / "dit.pt"), "--depth", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main([*deeper, "--deepen"])
    assert exit_info.value.code in (0, None), capsys.readouterr()
    grown = load_checkpoint(tmp_path / "deeper" / "dit.pt")
    assert grown["config"]["depth"] == 3 and grown["train_config"]["init"]["depth"] == 1
    # finer patches from the command line
    finer = [*common, "--buckets", "5x16x16,5x16x24,1x16x16", "--cache", str(tmp_path / "run" / "latents.pt")]
    finer += ["--init", str(tmp_path / "run" / "dit.pt"), "--patch", "1x1x1", "--repatch"]
    with pytest.raises(SystemExit) as exit_info:
        main([*finer, "--out", str(tmp_path / "finer")])
    assert exit_info.value.code in (0, None), capsys.readouterr()
    split = load_checkpoint(tmp_path / "finer" / "dit.pt")
    assert split["config"]["patch"] in ([1, 1, 1], (1, 1, 1)) and split["config"]["rope_scale"] == 0.5
