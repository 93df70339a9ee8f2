"""`fivefold grad`: the command-line shell over `fivefold.grad`."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="grad")
def cli() -> None:
    """NumPy reverse-mode autodiff with PyTorch's autograd semantics."""


def _shape(text: str) -> tuple[int, ...]:
    from fivefold._common.errors import UsageError

    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--shape {text!r}: expected sizes like 3 or 2,3") from None
    if any(s <= 0 for s in shape):
        raise UsageError(f"--shape {text!r}: sizes must be positive")
    return shape


@cli.command()
@click.argument("expr")
@click.option("--shape", default="3", show_default=True, help="Shape of the leaves x, y, z, w (e.g. 2,3).")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here instead of stdout: .dot for text, .png/.svg/.pdf rendered by Graphviz.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (nodes, edges, value).")
def graph(expr: str, shape: str, out: Path | None, as_json: bool) -> None:
    """Show the autograd graph of EXPR over random leaves x, y, z, w.

    Example: fivefold grad graph "(x * y + x).sum()"
    """
    from fivefold._common.jsonout import emit
    from fivefold.grad.viz import expression_graph, render, to_dot

    result, leaves = expression_graph(expr, _shape(shape))
    dot = to_dot(result, leaves)
    if out is not None:
        render(dot, out)
    if as_json:
        emit(
            {
                "expression": expr,
                "shape": list(result.shape),
                "grad_fn": result.grad_fn.name() if result.grad_fn is not None else None,
                "nodes": dot.count("[label="),
                "edges": dot.count("->"),
                "output": str(out) if out is not None else None,
                "dot": dot if out is None else None,
            }
        )
    elif out is None:
        click.echo(dot, nl=False)
    else:
        click.echo(f"wrote {out}")


@cli.command()
@click.argument("expr")
@click.option("--shape", default="3", show_default=True, help="Shape of the leaves x, y, z, w (e.g. 2,3).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def gradcheck(expr: str, shape: str, as_json: bool) -> None:
    """Check EXPR's backward against float64 finite differences (x, y, z, w as leaves)."""
    from fivefold._common.errors import FivefoldError
    from fivefold._common.jsonout import emit
    from fivefold.grad import float64
    from fivefold.grad.gradcheck import GradcheckError
    from fivefold.grad.gradcheck import gradcheck as check
    from fivefold.grad.viz import _names, evaluate, make_leaves

    leaves = make_leaves(_shape(shape), dtype=float64)
    evaluate(expr, leaves)  # reports a bad expression before any checking
    names = sorted(n for n in leaves if n in _names(expr))

    def func(*xs: object) -> object:
        return evaluate(expr, {**leaves, **dict(zip(names, xs, strict=True))})

    try:
        ok = check(func, [leaves[n] for n in names])
        detail = "analytical and numerical Jacobians agree"
    except GradcheckError as exc:
        ok, detail = False, str(exc).splitlines()[0]
    if as_json:
        emit({"expression": expr, "inputs": names, "ok": ok, "detail": detail})
    else:
        click.echo(f"{'ok' if ok else 'FAILED'}: {expr} ({detail})")
    if not ok:
        raise FivefoldError(f"gradcheck failed for {expr!r}: {detail}")


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("fivefold-demo/grad"),
    show_default=True,
    help="Where the demo writes its plot and graph.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was produced as JSON.")
def demo(out_dir: Path, as_json: bool) -> None:
    """Fit a line and train an MLP on the bundled digits; write a loss plot."""
    from fivefold._common.jsonout import emit
    from fivefold.grad.demo import demo as run

    outputs = run(out_dir)
    if as_json:
        emit(outputs)
    else:
        for label, value in outputs.items():
            click.echo(f"{label}: {value}")
