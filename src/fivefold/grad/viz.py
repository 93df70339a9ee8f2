"""Draw the autograd graph behind a tensor: Graphviz dot text, and PNG/SVG when ``dot`` is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from fivefold._common.errors import FivefoldError
from fivefold._common.files import atomic_path
from fivefold.grad.graph import AccumulateGrad, Node
from fivefold.grad.tensor import Tensor


def _shape(t: Tensor) -> str:
    return str(tuple(t._data.shape))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(output: Tensor, params: dict[str, Tensor] | None = None) -> str:
    """The backward graph of ``output`` as Graphviz dot text (walked iteratively, any depth)."""
    names = {id(t): n for n, t in (params or {}).items()}
    ids: dict[int, str] = {}

    def nid(node: Node) -> str:  # stable, readable ids: n0, n1, ... in walk order
        return ids.setdefault(id(node), f"n{len(ids)}")

    lines = [
        "digraph autograd {",
        '  rankdir="BT";',
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", fillcolor="#e8eef7"];',
    ]
    out_id = "out"
    lines.append(f'  {out_id} [label={_quote("output " + _shape(output))}, fillcolor="#cde8c9"];')
    root = output.grad_fn
    if root is None:
        lines.append("}")
        return "\n".join(lines) + "\n"
    lines.append(f"  {nid(root)} -> {out_id};")
    seen: set[int] = set()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            var = node.variable
            label = f"{names.get(id(var), 'leaf')} {_shape(var)}"
            lines.append(f'  {nid(node)} [label={_quote(label)}, fillcolor="#fbe3b5"];')
        else:
            lines.append(f"  {nid(node)} [label={_quote(node.name())}];")
        for child, _ in node.next_functions:
            if child is None:
                continue
            lines.append(f"  {nid(child)} -> {nid(node)};")
            stack.append(child)
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    return shutil.which("dot") is not None


def render(dot_text: str, path: Path, fmt: str | None = None) -> Path:
    """Writes dot text, or an image rendered by Graphviz, to ``path`` (atomically)."""
    fmt = fmt or (path.suffix.lstrip(".") or "dot")
    with atomic_path(path) as tmp:
        if fmt in ("dot", "gv"):
            tmp.write_text(dot_text)
        else:
            exe = shutil.which("dot")
            if exe is None:
                raise FivefoldError(
                    f"cannot write {path}: rendering {fmt} needs Graphviz's 'dot' "
                    "(apt-get install graphviz); use a .dot path for the text"
                )
            result = subprocess.run(
                [exe, f"-T{fmt}", "-o", str(tmp)],
                input=dot_text,
                text=True,
                capture_output=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                raise FivefoldError(f"dot failed for {path}: {result.stderr.strip()}")
    return path


def make_leaves(shape: tuple[int, ...] = (3,), seed: int = 0, dtype: Any = None) -> dict[str, Tensor]:
    """Random leaves x, y, z, w that require grad (what CLI expressions are written over)."""
    import fivefold.grad as fg

    fg.manual_seed(seed)
    return {name: fg.randn(*shape, dtype=dtype, requires_grad=True) for name in ("x", "y", "z", "w")}


def evaluate(expr: str, leaves: dict[str, Any]) -> Tensor:
    """Evaluates a torch-style expression (``torch``/``F`` name this package) over ``leaves``."""
    import fivefold.grad as fg
    from fivefold._common.errors import UsageError

    namespace: dict[str, Any] = {"torch": fg, "grad": fg, "F": fg.nn.functional, **leaves}
    try:
        code = compile(expr, "<expr>", "eval")
    except SyntaxError as exc:
        raise UsageError(f"invalid expression {expr!r}: {exc.msg}") from None
    try:
        result = eval(code, {"__builtins__": {}}, namespace)
    except Exception as exc:  # the expression's own error, reported in one line
        raise FivefoldError(f"expression {expr!r} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(result, Tensor):
        raise FivefoldError(f"expression {expr!r} did not produce a tensor")
    return result


def expression_graph(
    expr: str, shape: tuple[int, ...] = (3,), seed: int = 0
) -> tuple[Tensor, dict[str, Tensor]]:
    """The result of ``expr`` over random leaves, and the leaves it names."""
    leaves = make_leaves(shape, seed)
    result = evaluate(expr, leaves)
    return result, {n: t for n, t in leaves.items() if n in _names(expr)}


def _names(expr: str) -> set[str]:
    import ast

    return {node.id for node in ast.walk(ast.parse(expr, mode="eval")) if isinstance(node, ast.Name)}
