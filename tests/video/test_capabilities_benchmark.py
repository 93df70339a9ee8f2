"""The capabilities benchmark's unseen-size rows: the settings really are unseen, and sampling them in
chunks gives the same clips as one batch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from fivefold.video import capabilities as cap

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "video_capabilities.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("video_capabilities_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_unseen_settings_are_outside_the_trained_sizes() -> None:
    bench = load_bench()
    pipe = cap.load_pipeline(None)
    geo = cap.geometry(pipe)
    seen = bench.trained_sizes(pipe, geo)
    aspect, length = bench.unseen_settings(pipe, geo)
    assert (geo.window, geo.height, geo.width) in seen
    assert aspect not in seen and length not in seen
    assert aspect[0] == geo.window and aspect[1:] != (geo.height, geo.width)
    assert length[1:] == (geo.height, geo.width) and length[0] != geo.window


def test_chunked_sampling_equals_one_batch() -> None:
    torch.set_num_threads(1)
    bench = load_bench()
    pipe = cap.load_pipeline(None)
    prompts = ["a red circle moving left", "a blue square moving up", "a green triangle moving down"]
    size = (5, 32, 32)
    whole = bench.sample_in_chunks(pipe, prompts, size, chunk=3, steps=2, cfg=2.0)
    chunked = bench.sample_in_chunks(pipe, prompts, size, chunk=2, steps=2, cfg=2.0)
    assert whole.shape == (3, 3, 5, 32, 32)
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert not torch.allclose(whole[0], whole[1], atol=1e-3)
