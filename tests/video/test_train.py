from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fivefold._common.errors import UsageError
from fivefold.video import train as train_mod
from fivefold.video.diffusion import DiffusionConfig
from fivefold.video.dit import DiT
from fivefold.video.train import MASK_MODES, TrainConfig, global_batch, loss_fn, sample_known_mask, train
from fivefold.video.trainloop import NaNLossError, load_checkpoint

from .conftest import TINY_DIT, fake_buckets, fake_cache

TC = TrainConfig(steps=6, batch_size=8, lr=1e-3, warmup=2, ckpt_every=3, log_every=1, image_every=3)


def test_overfit_one_batch() -> None:
    torch.manual_seed(0)
    cache = fake_cache(n=8)
    model = DiT(TINY_DIT)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tc = dataclasses.replace(TC, batch_size=8, cond_dropout=0.0, mask_prob=0.0, image_every=0)
    losses = []
    for _ in range(80):
        batch, g = global_batch(cache, tc, 0)  # the same step every time: the same batch and noise
        loss = loss_fn(model, cache, DiffusionConfig(), batch, g, slice(0, 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_known_masks_cover_every_mode() -> None:
    mask = sample_known_mask(4000, 3, 0.5, torch.Generator().manual_seed(0))
    none = (~mask.any(1)).float().mean().item()
    assert 0.45 < none < 0.55  # mask_prob 0.5
    assert not mask.all(1).any()  # something is always left to generate
    rows = {tuple(r.tolist()) for r in mask}
    assert {(True, False, False), (False, False, True), (True, False, True), (False, True, False)} <= rows
    assert len(MASK_MODES) == 5


def test_known_mask_weights_choose_the_modes() -> None:
    g = torch.Generator().manual_seed(0)
    only_first = sample_known_mask(2000, 3, 1.0, g, (1.0, 0.0, 0.0, 0.0))
    assert only_first[:, 0].all() and not only_first[:, 1:].any()
    mostly_first = sample_known_mask(4000, 3, 1.0, g, (6.0, 1.0, 1.0, 0.0))
    share = (mostly_first.tolist().count([True, False, False])) / 4000
    assert 0.70 < share < 0.80  # 6 of 8, with the span mode off
    assert [False, True, False] not in mostly_first.tolist()
    # uniform weights replay the original draw exactly (older runs resume unchanged)
    a = sample_known_mask(64, 3, 0.5, torch.Generator().manual_seed(5))
    b = sample_known_mask(64, 3, 0.5, torch.Generator().manual_seed(5), (2.0, 2.0, 2.0, 2.0))
    assert torch.equal(a, b)


def test_loss_ignores_known_frames() -> None:
    cache = fake_cache(n=8)
    model = DiT(TINY_DIT)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch, _ = global_batch(cache, dataclasses.replace(TC, image_every=0), 1)
    batch.known_mask[:] = False
    batch.known_mask[:, 0] = True
    g1 = torch.Generator().manual_seed(5)
    base = loss_fn(model, cache, DiffusionConfig(), batch, g1, slice(0, 8))
    # a model whose output differs only on known frame 0 has the same loss
    original = model.forward

    def shifted(*args: object, **kw: object) -> torch.Tensor:
        out = original(*args, **kw)  # type: ignore[arg-type]
        out = out.clone()
        out[:, :, 0] += 100.0
        return out

    model.forward = shifted  # type: ignore[method-assign]
    g2 = torch.Generator().manual_seed(5)
    assert loss_fn(model, cache, DiffusionConfig(), batch, g2, slice(0, 8)).item() == pytest.approx(
        base.item()
    )


def test_resume_is_exact(tmp_path: Path) -> None:
    cache = fake_cache()
    full = train(tmp_path / "a", cache, TINY_DIT, TC)
    first = train(tmp_path / "b", cache, TINY_DIT, TC, stop_after=3)
    assert load_checkpoint(tmp_path / "b" / "dit.pt")["step"] == 3
    rest = train(tmp_path / "b", cache, TINY_DIT, TC, resume=True)
    assert first["losses"] + rest["losses"] == full["losses"]
    a = load_checkpoint(tmp_path / "a" / "dit.pt")
    b = load_checkpoint(tmp_path / "b" / "dit.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    log = (tmp_path / "b" / "train_log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in log[1:]] == list(range(6))
    assert (tmp_path / "b" / "train_loss.png").stat().st_size > 0


def test_resume_refuses_another_config(tmp_path: Path) -> None:
    cache = fake_cache()
    train(tmp_path, cache, TINY_DIT, TC, stop_after=3)
    with pytest.raises(
        UsageError, match=r"DiT of another config: depth=2 \(asked 3\), hidden=32 \(asked 48\)"
    ):
        train(tmp_path, cache, dataclasses.replace(TINY_DIT, hidden=48, depth=3), TC, resume=True)
    with pytest.raises(UsageError, match=r"training run of another config: lr=0.001 \(asked 0.01\)"):
        train(tmp_path, cache, TINY_DIT, dataclasses.replace(TC, lr=0.01), resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = train_mod.training_pair
    calls = {"n": 0}

    def poisoned(*args: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xt, t, target = real(*args)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 5:  # step 4
            target = target * float("nan")
        return xt, t, target

    monkeypatch.setattr(train_mod, "training_pair", poisoned)
    with pytest.raises(
        NaNLossError, match=r"loss is nan at step 4; stopped, last good checkpoint kept .*step 3"
    ):
        train(tmp_path, fake_cache(), TINY_DIT, TC)
    state = load_checkpoint(tmp_path / "dit.pt")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())


WORKER = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.video.conftest import TINY_DIT, fake_buckets, fake_cache
    from tests.video.test_train import TC
    from fivefold.video.train import init_distributed, train
    import torch.distributed as dist
    torch.set_num_threads(1)
    init_distributed()
    result = train(Path(sys.argv[1]), fake_cache(), TINY_DIT, TC, stop_after=2)
    bucketed = train(Path(sys.argv[1]) / "buckets", fake_buckets(), TINY_DIT, TC, stop_after=4)
    if dist.get_rank() == 0:
        print("LOSSES", result["losses"])
        print("BUCKETS", bucketed["bucket_steps"], bucketed["losses"])
    dist.destroy_process_group()
    """
)


def test_ddp_two_gloo_processes_equal_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    single = train(tmp_path / "one", fake_cache(), TINY_DIT, TC, stop_after=2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path / "two"),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "dit.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "dit.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    losses = [float(v) for v in proc.stdout.split("LOSSES", 1)[1].split("\n", 1)[0].strip(" []").split(",")]
    assert losses == pytest.approx(single["losses"], rel=1e-5)
    # size buckets: the ranks agree on each step's bucket with no communication
    one = train(tmp_path / "one" / "buckets", fake_buckets(), TINY_DIT, TC, stop_after=4)
    steps, two_losses = proc.stdout.split("BUCKETS", 1)[1].strip().split("] [")
    assert [int(v) for v in steps.strip("[ ").split(",")] == one["bucket_steps"]
    assert [float(v) for v in two_losses.strip("] \n").split(",")] == pytest.approx(one["losses"], rel=1e-5)
    a = load_checkpoint(tmp_path / "one" / "buckets" / "dit.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "buckets" / "dit.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_object_weights_peak_on_the_object_and_leave_the_background_at_one() -> None:
    x0 = torch.zeros(2, 4, 3, 6, 6)
    x0[:, :, :, 2:4, 2:4] = 1.5  # an object on a flat background
    x0[:, :, :, 2, 2] = 3.0  # its most distinct pixel
    w = train_mod.object_weights(x0, 4.0)
    assert w.shape == (2, 1, 3, 6, 6)
    assert torch.allclose(w[:, :, :, 0, 0], torch.ones(2, 1, 3))
    assert torch.allclose(w[:, :, :, 2, 2], torch.full((2, 1, 3), 5.0), atol=1e-4)
    assert torch.allclose(w[:, :, :, 3, 3], torch.full((2, 1, 3), 3.0), atol=1e-4)


def test_object_weight_changes_the_loss_and_is_recorded(tmp_path: Path) -> None:
    cache = fake_cache(n=8)
    torch.manual_seed(0)
    model = DiT(TINY_DIT)
    plain_tc = dataclasses.replace(TC, mask_prob=0.0, image_every=0)
    weighted_tc = dataclasses.replace(plain_tc, object_weight=4.0)
    plain, g1 = global_batch(cache, plain_tc, 0)
    weighted, g2 = global_batch(cache, weighted_tc, 0)
    assert plain.pixel_weight is None and weighted.pixel_weight is not None
    assert torch.equal(plain.x0, weighted.x0)  # the same examples and noise; only the weights differ
    with torch.no_grad():
        a = loss_fn(model, cache, DiffusionConfig(), plain, g1, slice(0, 8))
        b = loss_fn(model, cache, DiffusionConfig(), weighted, g2, slice(0, 8))
    assert abs(a.item() - b.item()) > 1e-4
    train(tmp_path, cache, TINY_DIT, dataclasses.replace(weighted_tc, steps=1))
    assert load_checkpoint(tmp_path / "dit.pt")["train_config"]["object_weight"] == 4.0
