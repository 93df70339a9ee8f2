"""The benchmark's speed harness still builds every contender: the reference DiT, the "before" code
read from git, and today's DiT (a config field added since "before" once broke it unnoticed)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


def has_before_commit(bench: ModuleType) -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{bench.BEFORE}^{{commit}}"], capture_output=True
    )
    return found.returncode == 0


def test_every_contender_trains_a_step() -> None:
    bench = load_benchmark("video.py")
    if not has_before_commit(bench):
        pytest.skip("not a git checkout with the 'before' commit")
    times = bench.compare_reference(hidden=32, heads=2, batch=2, rounds=1, per_round=1)
    assert set(times) == {"reference", "before", "after", "after, fused AdamW"}
    assert all(math.isfinite(t) and t > 0 for t in times.values())
