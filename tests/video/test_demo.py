from __future__ import annotations

from pathlib import Path

import pytest

from fivefold.video.sample import SHIPPED_MODEL


def test_demo_samples_three_prompts(tmp_path: Path) -> None:
    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model (src/fivefold/video/assets/video_model.pt) is not in this checkout")
    from fivefold.video.demo import DEMO_PROMPTS, demo

    outputs = demo(tmp_path)
    assert Path(outputs["gif"]).stat().st_size > 0
    assert Path(outputs["grid"]).stat().st_size > 0
    assert outputs["prompts"] == " | ".join(DEMO_PROMPTS)
    assert "judge" in outputs
