"""A second training stage starts from a first run's weights and EMA, with its own schedule."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from fivefold._common.errors import UsageError
from fivefold.video.dit import DiT, DiTConfig
from fivefold.video.patches import patchify
from fivefold.video.rope import rope_tables
from fivefold.video.train import TrainConfig, train
from fivefold.video.trainloop import load_checkpoint

from .conftest import TINY_DIT, fake_cache

TC = TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup=1, ckpt_every=2, log_every=1, image_every=0)


def test_init_starts_from_the_first_run_and_resumes_exactly(tmp_path: Path) -> None:
    cache = fake_cache()
    train(tmp_path / "one", cache, TINY_DIT, TC)
    stage1 = load_checkpoint(tmp_path / "one" / "dit.pt")
    frozen = dataclasses.replace(TC, lr=0.0)  # one step that cannot move the weights
    train(tmp_path / "zero", cache, TINY_DIT, frozen, init=tmp_path / "one" / "dit.pt", stop_after=1)
    zero = load_checkpoint(tmp_path / "zero" / "dit.pt")
    assert zero["train_config"]["init"] == {"checkpoint": str(tmp_path / "one" / "dit.pt"), "step": 4}
    for key in stage1["model"]:
        assert torch.equal(zero["model"][key], stage1["model"][key]), key
    two = dataclasses.replace(TC, lr=3e-4)
    whole = train(tmp_path / "whole", cache, TINY_DIT, two, init=tmp_path / "one" / "dit.pt")
    train(tmp_path / "part", cache, TINY_DIT, two, init=tmp_path / "one" / "dit.pt", stop_after=2)
    rest = train(tmp_path / "part", cache, TINY_DIT, two, init=tmp_path / "one" / "dit.pt", resume=True)
    assert rest["losses"] == whole["losses"][2:]


def test_init_refuses_another_config(tmp_path: Path) -> None:
    cache = fake_cache()
    train(tmp_path / "one", cache, TINY_DIT, TC, stop_after=1)
    bigger = dataclasses.replace(TINY_DIT, hidden=48)
    with pytest.raises(UsageError, match=r"hidden=32 \(asked 48\)"):
        train(tmp_path / "two", fake_cache(), bigger, TC, init=tmp_path / "one" / "dit.pt")


def test_deepen_starts_as_the_same_function_and_then_trains(tmp_path: Path) -> None:
    cache = fake_cache()
    train(tmp_path / "one", cache, TINY_DIT, TC)
    stage1 = load_checkpoint(tmp_path / "one" / "dit.pt")
    deeper = dataclasses.replace(TINY_DIT, depth=5)
    with pytest.raises(UsageError, match=r"depth=2 \(asked 5\); --deepen grows a shallower model"):
        train(tmp_path / "refused", cache, deeper, TC, init=tmp_path / "one" / "dit.pt")
    frozen = dataclasses.replace(TC, lr=0.0)
    one = tmp_path / "one" / "dit.pt"
    train(tmp_path / "grown", cache, deeper, frozen, init=one, deepen_init=True, stop_after=1)
    grown = load_checkpoint(tmp_path / "grown" / "dit.pt")
    assert grown["train_config"]["init"]["depth"] == 2
    assert grown["config"]["depth"] == 5
    # the old blocks sit at 0 and 2 (of 0-4), in order; the others are new
    qkv = "blocks.{}.attn.qkv.weight"
    assert torch.equal(grown["model"][qkv.format(2)], stage1["model"][qkv.format(1)])
    assert not torch.equal(grown["model"][qkv.format(1)], stage1["model"][qkv.format(0)])
    small, big = DiT(TINY_DIT).eval(), DiT(deeper).eval()
    small.load_state_dict(stage1["model"])
    big.load_state_dict(grown["model"])
    x, t = torch.randn(2, 4, 3, 4, 4), torch.rand(2)
    y, y_mask, pooled = torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool), torch.randn(2, 384)
    known = torch.zeros(2, 3, dtype=torch.bool)
    known[:, 0] = True
    with torch.no_grad():
        before = small(x, t, y, y_mask=y_mask, y_pooled=pooled, known=x, known_mask=known)
        after = big(x, t, y, y_mask=y_mask, y_pooled=pooled, known=x, known_mask=known)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    moved = train(tmp_path / "trained", cache, deeper, TC, init=one, deepen_init=True)
    new_gate = load_checkpoint(tmp_path / "trained" / "dit.pt")["model"]["blocks.1.adaLN_modulation.1.weight"]
    assert new_gate.abs().sum() > 0 and all(math.isfinite(v) for v in moved["losses"])
    shallower = dataclasses.replace(TINY_DIT, depth=1)
    with pytest.raises(UsageError, match="cannot deepen a depth-2 model to depth 1"):
        train(tmp_path / "shrunk", cache, shallower, TC, init=one, deepen_init=True)


def test_init_refuses_another_latent_scale(tmp_path: Path) -> None:
    cache = fake_cache()
    vae = {"config": {"scale": 1.5, "shift": -0.2}, "model": {}}
    train(tmp_path / "one", cache, TINY_DIT, TC, stop_after=1, vae_state=vae)
    refit = {"config": {"scale": 1.6, "shift": -0.3}, "model": {}}
    with pytest.raises(UsageError, match=r"learned latents at VAE scale 1\.5000; --vae has 1\.6000"):
        train(tmp_path / "two", cache, TINY_DIT, TC, init=tmp_path / "one" / "dit.pt", vae_state=refit)
    same = train(tmp_path / "three", cache, TINY_DIT, TC, init=tmp_path / "one" / "dit.pt", vae_state=vae,
                 stop_after=1)
    assert len(same["losses"]) == 1


def test_stages_record_their_lineage_and_pack_finds_it_for_older_runs(tmp_path: Path) -> None:
    from fivefold.video.pack import earlier_stages

    cache = fake_cache()
    vae = {"config": {"scale": 1.0, "shift": 0.0}, "model": {}}
    train(tmp_path / "one", cache, TINY_DIT, TC, stop_after=1, vae_state=vae)
    for seed, name, before in ((2, "two", "one"), (3, "three", "two")):
        stage = dataclasses.replace(TC, seed=seed)
        init = tmp_path / before / "dit.pt"
        train(tmp_path / name, cache, TINY_DIT, stage, init=init, stop_after=1, vae_state=vae)
    last = tmp_path / "three" / "dit.pt"
    recorded = load_checkpoint(last)["train_config"]
    assert [stage["seed"] for stage in recorded["lineage"]] == [0, 2]
    assert earlier_stages(last, recorded) == recorded["lineage"]
    # A checkpoint from before lineage was recorded: found by following the init paths on disk,
    # here recorded relative to the folder that holds the run folders.
    for name in ("two", "three"):
        path = tmp_path / name / "dit.pt"
        old = load_checkpoint(path)
        del old["train_config"]["lineage"]
        init = old["train_config"]["init"]
        init["checkpoint"] = str(Path(init["checkpoint"]).relative_to(tmp_path))
        torch.save(old, path)
    legacy = load_checkpoint(last)["train_config"]
    assert [stage["seed"] for stage in earlier_stages(last, legacy)] == [0, 2]


def test_repatch_splits_patches_and_keeps_what_a_token_means(tmp_path: Path) -> None:
    cache = fake_cache()
    train(tmp_path / "one", cache, TINY_DIT, TC)
    one = tmp_path / "one" / "dit.pt"
    fine = dataclasses.replace(TINY_DIT, patch=(1, 1, 1))
    assert "rope_scale" not in TINY_DIT.to_dict()  # a later field: earlier configs still match
    with pytest.raises(UsageError, match="--repatch splits a model's patches"):
        train(tmp_path / "refused", cache, fine, TC, init=one)
    with pytest.raises(UsageError, match="cannot re-patch 1x2x2 to 1x4x4"):
        train(tmp_path / "coarser", cache, dataclasses.replace(TINY_DIT, patch=(1, 4, 4)), TC, init=one,
              repatch_init=True)
    frozen = dataclasses.replace(TC, lr=0.0)
    train(tmp_path / "split", cache, fine, frozen, init=one, repatch_init=True, stop_after=1)
    split = load_checkpoint(tmp_path / "split" / "dit.pt")
    assert split["config"]["rope_scale"] == 0.5 and split["train_config"]["init"]["patch"] == [1, 2, 2]
    coarse, finer = DiT(TINY_DIT).eval(), DiT(DiTConfig.from_dict(split["config"])).eval()
    coarse.load_state_dict(load_checkpoint(one)["model"])
    finer.load_state_dict(split["model"])
    # a latent uniform inside each 2x2 patch: every fine token embeds as its coarse patch does
    x = torch.randn(2, TINY_DIT.in_channels, 3, 2, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)
    with torch.no_grad():
        embed_coarse = coarse.x_embedder(patchify(x, (1, 2, 2))[0]).view(2, 3, 2, 2, -1)
        embed_fine = finer.x_embedder(patchify(x, (1, 1, 1))[0]).view(2, 3, 4, 4, -1)
        torch.testing.assert_close(embed_fine[:, :, 1::2, ::2], embed_coarse, rtol=0, atol=1e-5)
        # and predicts the mean of the coarse outputs over the positions it covers
        h = torch.randn(2, 7, TINY_DIT.hidden)
        out_coarse = coarse.final_layer.linear(h).view(2, 7, TINY_DIT.out_channels, 4).mean(-1)
        torch.testing.assert_close(finer.final_layer.linear(h), out_coarse, rtol=0, atol=1e-6)
    # fine token (t, 2i, 2j) sits where coarse token (t, i, j) did
    cos_fine, _ = rope_tables((3, 4, 4), 16, spatial_scale=0.5)
    cos_coarse, _ = rope_tables((3, 2, 2), 16)
    assert torch.equal(cos_fine.view(3, 4, 4, -1)[:, ::2, ::2], cos_coarse.view(3, 2, 2, -1))
    # the re-patched model trains and resumes exactly
    whole = train(tmp_path / "whole", cache, fine, TC, init=one, repatch_init=True)
    train(tmp_path / "part", cache, fine, TC, init=one, repatch_init=True, stop_after=2)
    rest = train(tmp_path / "part", cache, fine, TC, init=one, repatch_init=True, resume=True)
    assert rest["losses"] == whole["losses"][2:] and all(math.isfinite(v) for v in whole["losses"])
