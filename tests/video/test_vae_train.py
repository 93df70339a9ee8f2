"""vae-train: an interrupted run resumed gives the uninterrupted run's weights; the CLI reports PSNR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fivefold._common.errors import UsageError
from fivefold.video.vae import VAEConfig
from fivefold.video.vae_train import VAETrainConfig, load_vae, train_vae

TINY = VAEConfig(latent_channels=4, channels=(8, 8, 8))
RUN = VAETrainConfig(
    steps=4, batch_size=2, frames=5, eval_frames=5, height=16, width=16, warmup=1, edge_weight=0.5
)


def test_resume_is_exact_and_finalises(tmp_path: Path) -> None:
    whole = train_vae(tmp_path / "whole", TINY, RUN)
    train_vae(tmp_path / "cut", TINY, RUN, stop_after=2)
    cut = train_vae(tmp_path / "cut", TINY, RUN, resume=True)
    a, b = load_vae(tmp_path / "whole" / "vae_final.pt"), load_vae(tmp_path / "cut" / "vae_final.pt")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert cut["psnr_db"] == whole["psnr_db"] > 0
    assert json.loads((tmp_path / "cut" / "vae_eval.json").read_text())["psnr_db"] == cut["psnr_db"]


def test_resume_with_another_loss_is_refused(tmp_path: Path) -> None:
    train_vae(tmp_path / "run", TINY, RUN, stop_after=1)
    other = VAETrainConfig(**{**RUN.__dict__, "edge_weight": 0.0})
    with pytest.raises(UsageError, match="edge_weight"):
        train_vae(tmp_path / "run", TINY, other, resume=True)


def test_cli_decoder_only_keeps_the_encoder(tmp_path: Path) -> None:
    from fivefold.video.cli import cli

    base = [
        "vae-train",
        "--steps",
        "2",
        "--batch",
        "2",
        "--size",
        "16x16",
        "--latent-channels",
        "4",
        "--json",
    ]
    first = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["psnr_db"] > 0
    tuned = CliRunner().invoke(
        cli,
        [
            *base,
            "--out",
            str(tmp_path / "b"),
            "--init",
            str(tmp_path / "a" / "vae_final.pt"),
            "--decoder-only",
            "--edge-weight",
            "1",
        ],
    )
    assert tuned.exit_code == 0, tuned.output
    a, b = load_vae(tmp_path / "a" / "vae_final.pt"), load_vae(tmp_path / "b" / "vae_final.pt")
    assert all(
        torch.equal(p, b.state_dict()[k]) for k, p in a.state_dict().items() if k.startswith("encoder.")
    )
    assert any(
        not torch.equal(p, b.state_dict()[k]) for k, p in a.state_dict().items() if k.startswith("decoder.")
    )
