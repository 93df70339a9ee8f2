"""The examples (against torch where they run on both), the demo, graph rendering and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from click.testing import CliRunner

from fivefold.grad.cli import cli
from tests.grad.conftest import fg, torch

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"grad_example_{name}", ROOT / "examples" / "grad" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_x_squared_matches_torch() -> None:
    ex = _example("x_squared")
    ours, theirs = ex.main(fg), ex.main(torch)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert abs(ours[-1]) < 1e-3 < abs(ours[0])


def test_linear_fit_diverges_at_0_1_and_converges_at_0_01_like_torch() -> None:
    ex = _example("linear_fit")
    ours, theirs = ex.main(fg), ex.main(torch)
    for run in (ours, theirs):
        fast, slow = run["lr=0.1"], run["lr=0.01"]
        assert fast["losses"][-1] > 1e6 * fast["losses"][0]  # diverges
        assert slow["losses"][-1] < 1e-2 and abs(slow["a"] - 3) < 0.05  # converges
    np.testing.assert_allclose(ours["lr=0.01"]["losses"], theirs["lr=0.01"]["losses"], rtol=1e-4)
    np.testing.assert_allclose(ours["lr=0.1"]["losses"][:10], theirs["lr=0.1"]["losses"][:10], rtol=1e-4)


def test_char_transformer_loss_falls() -> None:
    losses = _example("char_transformer").main(steps=25, batch=8)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])


def test_demo_trains_digits_and_writes_plot(tmp_path: Path) -> None:
    from fivefold.grad.demo import demo

    out = demo(tmp_path)
    accuracy = float(out["digits MLP test accuracy"].split("%")[0]) / 100
    assert accuracy >= 0.97
    png = Path(out["loss plot"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "digraph" in Path(out["graph (dot)"]).read_text()
    assert "a=3.0" in out["line fit"] or "a=2.9" in out["line fit"]


def test_graph_command_prints_dot() -> None:
    result = CliRunner().invoke(cli, ["graph", "(x * y + x).sum()"])
    assert result.exit_code == 0, result.output
    dot = result.output
    assert dot.startswith("digraph autograd {")
    for name in ("SumBackward0", "AddBackward0", "MulBackward0", 'label="x (3,)"', 'label="y (3,)"'):
        assert name in dot
    assert dot.count("->") == 6


def test_graph_command_json_and_png(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["graph", "F.softmax(x @ y.T, -1).sum()", "--shape", "2,3", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["grad_fn"] == "SumBackward0" and info["edges"] >= 5
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed (PNG rendering is optional)")
    png = tmp_path / "g.png"
    result = CliRunner().invoke(cli, ["graph", "(x * y).exp().sum()", "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_gradcheck_command() -> None:
    result = CliRunner().invoke(cli, ["gradcheck", "(x * y).tanh().sum() + z.exp().mean()", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["ok"] is True and info["inputs"] == ["x", "y", "z"]


def _fivefold(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process (tracebacks and exit codes as a user sees them)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "fivefold", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_errors_are_one_line() -> None:
    bad = _fivefold("grad", "graph", "(x *")
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().startswith("fivefold grad: invalid expression") and "Traceback" not in bad.stderr
    )
    fails = _fivefold("grad", "graph", "x @ y.reshape(1, 3)")
    assert fails.returncode == 1
    assert (
        "mat1 and mat2 shapes cannot be multiplied (1x3 and 1x3)" in fails.stderr
        and len(fails.stderr.strip().splitlines()) == 1
    )


TUTORIAL = """
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
with torch.no_grad():
    model[0].weight.copy_(torch.tensor([[0.1, -0.2, 0.05]]))
    model[0].bias.fill_(0.0)
loss_fn = torch.nn.MSELoss(reduction='sum')
for t in range(100):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= 1e-6 * param.grad
result = [loss.item(), model[0].bias.item()] + [model[0].weight[:, i].item() for i in range(3)]
"""


def test_torch_tutorial_runs_unchanged() -> None:
    """PyTorch's "Learning PyTorch with examples" nn fit: only the import differs."""
    import math

    results = []
    for lib in (fg, torch):
        scope = {"torch": lib, "math": math}
        exec(TUTORIAL, scope)
        results.append(scope["result"])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)
