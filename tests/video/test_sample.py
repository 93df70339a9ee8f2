from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fivefold._common.errors import FivefoldError, UsageError
from fivefold.video.media import save_grid, save_video
from fivefold.video.pack import pack
from fivefold.video.sample import Pipeline, generate, load_pipeline
from fivefold.video.train import train

from .conftest import TINY_DIT, TINY_VAE, fake_cache, fake_text

PROMPTS = ["a red circle moving left", "a blue square moving up"]


def test_generate_is_deterministic_per_seed(pipe: Pipeline) -> None:
    a = generate(pipe, PROMPTS, 5, 8, 16, steps=3, cfg=3.0, seed=7)
    b = generate(pipe, PROMPTS, 5, 8, 16, steps=3, cfg=3.0, seed=7)
    c = generate(pipe, PROMPTS, 5, 8, 16, steps=3, cfg=3.0, seed=8)
    assert a.shape == (2, 3, 5, 8, 16)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # a prompt's sample does not depend on the rest of the batch
    torch.testing.assert_close(generate(pipe, PROMPTS[:1], 5, 8, 16, steps=3, cfg=3.0, seed=7), a[:1])


def test_known_frames_are_kept(pipe: Pipeline) -> None:
    video = torch.rand(1, 3, 9, 8, 8) * 2 - 1
    known = torch.zeros(1, 9, dtype=torch.bool)
    known[:, :5] = True  # pixel frames 0..4 = latent frames 0 and 1
    assert pipe.latent_known(known).tolist() == [[True, True, False]]
    out = generate(pipe, PROMPTS[:1], 9, 8, 8, steps=2, known_video=video, known_frames=known)
    recon = pipe.decode_latents(pipe.encode_video(video))
    # the causal decoder makes pixel frames 0..4 a function of the known latents only
    torch.testing.assert_close(out[:, :, :5], recon[:, :, :5])


def test_factorized_sampling_draws_the_image_first(pipe: Pipeline) -> None:
    clip = generate(pipe, PROMPTS, 9, 8, 8, steps=6, seed=11, factorized=True)
    image = generate(pipe, PROMPTS, 1, 8, 8, steps=3, seed=11)  # half the budget goes to the image
    # the clip's first frame is the image sampled alone (the causal decoder: frame 0 sees latent 0)
    torch.testing.assert_close(clip[:, :, :1], image)
    joint = generate(pipe, PROMPTS, 9, 8, 8, steps=6, seed=11)
    assert not torch.allclose(joint, clip)
    assert torch.equal(clip, generate(pipe, PROMPTS, 9, 8, 8, steps=6, seed=11, factorized=True))
    # the default comes from the checkpoint's sampling settings
    packed = dataclasses.replace(pipe, config={**pipe.config, "factorized": True})
    assert torch.equal(clip, generate(packed, PROMPTS, 9, 8, 8, steps=6, seed=11))


def test_strength_ends(pipe: Pipeline) -> None:
    init = torch.rand(1, 3, 5, 8, 8) * 2 - 1
    assert torch.equal(generate(pipe, PROMPTS[:1], 5, 8, 8, steps=4, init_video=init, strength=0.0), init)
    full = generate(pipe, PROMPTS[:1], 5, 8, 8, steps=4, seed=3)
    edited = generate(pipe, PROMPTS[:1], 5, 8, 8, steps=4, seed=3, init_video=init, strength=1.0)
    torch.testing.assert_close(full, edited)
    with pytest.raises(UsageError, match="strength must be in"):
        generate(pipe, PROMPTS[:1], 5, 8, 8, init_video=init, strength=1.2)


def test_bad_sizes_name_the_nearest_valid(pipe: Pipeline) -> None:
    with pytest.raises(
        UsageError, match=r"frames=7 must be 1 \+ 4\*k \(nearest: 5 or 9\).*width=12.*8 or 16"
    ):
        generate(pipe, PROMPTS[:1], 7, 8, 12)


def test_train_checkpoint_samples_and_packs(tmp_path: Path) -> None:
    from fivefold.video.vae import VideoVAE

    vae = VideoVAE(TINY_VAE)
    tc = dataclasses.replace(
        __import__("fivefold.video.train", fromlist=["TrainConfig"]).TrainConfig(), steps=2, batch_size=4
    )
    train(
        tmp_path,
        fake_cache(),
        TINY_DIT,
        tc,
        vae_state={"config": TINY_VAE.to_dict(), "model": vae.state_dict()},
    )
    pipe = load_pipeline(tmp_path / "dit.pt")
    for p in ("", *PROMPTS):
        pipe.text.cache[p] = fake_text(p)
    a = generate(pipe, PROMPTS, 5, 8, 8, steps=2)
    cache_file = tmp_path / "text.pt"
    torch.save({p: pipe.text.cache[p] for p in ("", *PROMPTS)}, cache_file)
    size = pack(tmp_path / "dit.pt", tmp_path / "packed.pt", cache_file)
    assert 0 < size < (tmp_path / "dit.pt").stat().st_size
    packed = load_pipeline(tmp_path / "packed.pt")
    b = generate(packed, PROMPTS, 5, 8, 8, steps=2)  # prompts come from the packed text cache
    torch.testing.assert_close(a, b, atol=2e-2, rtol=0)  # fp16 weights
    with pytest.raises(FivefoldError, match="not found"):
        load_pipeline(tmp_path / "missing.pt")


def test_media_writers(tmp_path: Path) -> None:
    clips = torch.rand(2, 3, 5, 8, 8) * 2 - 1
    gif = save_video(tmp_path / "c.gif", clips, upscale=2)
    mp4 = save_video(tmp_path / "c.mp4", clips[0], upscale=2)
    png = save_grid(tmp_path / "g.png", clips, upscale=2)
    from PIL import Image

    with Image.open(gif) as im:
        assert im.size == (32, 16) and im.n_frames == 5
    with Image.open(png) as im:
        assert im.size == (5 * 17 - 1, 2 * 17 - 1)
    assert mp4.stat().st_size > 0
    with pytest.raises(UsageError, match=r"\.gif or \.mp4"):
        save_video(tmp_path / "c.avi", clips)
    from fivefold.video.data import to_uint8
    from fivefold.video.media import to_frames

    frames = to_frames(clips[0], upscale=2)  # each pixel becomes a 2x2 block
    assert frames.shape == (5, 16, 16, 3) and frames.flags.c_contiguous
    assert (frames[:, ::2, ::2] == to_uint8(clips[0])).all()
    assert (frames[:, 1::2, 1::2] == frames[:, ::2, ::2]).all()


def test_pack_swaps_only_a_decoder_fine_tune(tmp_path: Path) -> None:
    from fivefold.video.train import TrainConfig
    from fivefold.video.trainloop import atomic_save
    from fivefold.video.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(TINY_VAE)
    train(
        tmp_path,
        fake_cache(),
        TINY_DIT,
        dataclasses.replace(TrainConfig(), steps=1, batch_size=4),
        vae_state={"config": TINY_VAE.to_dict(), "model": vae.state_dict()},
    )
    tuned = {k: v + 1 if k.startswith("decoder.") else v for k, v in vae.state_dict().items()}
    atomic_save({"kind": "vae-final", "config": TINY_VAE.to_dict(), "model": tuned}, tmp_path / "dec.pt")
    pack(tmp_path / "dit.pt", tmp_path / "p.pt", vae=tmp_path / "dec.pt")
    shipped = load_pipeline(tmp_path / "p.pt").vae.state_dict()
    assert all(torch.equal(shipped[k], tuned[k]) for k in tuned)
    other = {k: v + 1 for k, v in vae.state_dict().items()}
    atomic_save({"kind": "vae-final", "config": TINY_VAE.to_dict(), "model": other}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match="another encoder"):
        pack(tmp_path / "dit.pt", tmp_path / "p.pt", vae=tmp_path / "other.pt")
