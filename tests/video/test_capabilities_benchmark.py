"""The capabilities benchmark's unseen-size rows: the settings really are unseen, and sampling them in
chunks gives the same clips as one batch."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch

from fivefold.video import capabilities as cap

from .conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("video_capabilities.py")


@pytest.fixture(scope="module")
def shipped() -> Any:
    return cap.load_pipeline(None)


def test_unseen_settings_are_outside_the_trained_sizes(bench: ModuleType, shipped: Any) -> None:
    geo = cap.geometry(shipped)
    seen = bench.trained_sizes(shipped, geo)
    aspect, length = bench.unseen_settings(shipped, geo)
    assert (geo.window, geo.height, geo.width) in seen
    assert aspect not in seen and length not in seen
    assert aspect[0] == geo.window and aspect[1:] != (geo.height, geo.width)
    assert length[1:] == (geo.height, geo.width) and length[0] != geo.window


def test_chunked_sampling_equals_one_batch(bench: ModuleType, shipped: Any) -> None:
    prompts = ["a red circle moving left", "a blue square moving up", "a green triangle moving down"]
    size = (5, 32, 32)
    whole = bench.sample_in_chunks(shipped, prompts, size, chunk=3, steps=2, cfg=2.0)
    chunked = bench.sample_in_chunks(shipped, prompts, size, chunk=2, steps=2, cfg=2.0)
    assert whole.shape == (3, 3, 5, 32, 32)
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert not torch.allclose(whole[0], whole[1], atol=1e-3)
