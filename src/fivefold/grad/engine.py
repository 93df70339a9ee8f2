"""The backward engine: runs a graph's nodes from the roots to the leaves.

One iterative pass counts, for every reachable node, how many edges lead into it; then
nodes run from a heap ordered by creation (newest first, leaf accumulators before
everything else, as torch's CPU engine does), each once its count reaches zero.

Gradients travel as bare NumPy arrays unless ``create_graph`` is set; then they are
tensors and each node's formula, written once against the ``ops`` namespace it is
handed, records a graph of its own (that is how higher-order gradients work).
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fivefold.grad.graph import FREED_MSG, Node, _run_tensor_hooks, edge
from fivefold.grad.mode import STATE

if TYPE_CHECKING:
    from fivefold.grad.tensor import Tensor


def run_backward(
    roots: Sequence[Tensor],
    grads: Sequence[Any],
    *,
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Tensor] | None = None,
    accumulate: bool = True,
    allow_unused: bool = False,
) -> list[Any] | None:
    """The engine behind ``Tensor.backward``, ``autograd.backward`` and ``autograd.grad``.

    With ``accumulate`` false (``autograd.grad``) the gradients for ``inputs`` are returned and no
    ``.grad`` is touched; with ``inputs`` and ``accumulate`` only those inputs' ``.grad`` change.
    """
    ops = _backend().TENSOR if create_graph else _backend().NP
    start: list[tuple[Node, int, Any]] = []
    for i, root in enumerate(roots):
        node, nr = (root.grad_fn, root._onr) if root.grad_fn is not None else edge(root)
        if node is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        start.append((node, nr, grads[i]))

    captures: dict[Node, list[tuple[int, int]]] | None = None
    capture_only: set[Node] = set()
    results: list[Any] = []
    targets: set[Node] | None = None
    if inputs is not None:
        captures = {}
        targets = set()
        results = [None] * len(inputs)
        for i, t in enumerate(inputs):
            if t.grad_fn is None and not t._rg:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            node, nr = edge(t)
            assert node is not None
            targets.add(node)
            if accumulate and t.grad_fn is None:
                continue  # a leaf: its AccumulateGrad runs normally
            captures.setdefault(node, []).append((nr, i))
            if t.grad_fn is None:
                capture_only.add(node)

    deps = _count_dependencies([n for n, _, _ in start], targets)

    buffers: dict[Node, Any] = {}
    heap: list[tuple[int, Node]] = []
    for node, nr, g in start:
        if targets is not None and node not in deps:
            continue
        _add_to_buffer(buffers, node, nr, g)
    for node in list(buffers):
        if deps.get(node, 0) == 0:
            heap.append((-node._seq, node))
    heapq.heapify(heap)

    pop, push = heapq.heappop, heapq.heappush
    anomaly = STATE.anomaly
    prev_mode = STATE.enabled
    STATE.enabled = create_graph  # formulas record a graph only for create_graph
    try:
        while heap:
            node = pop(heap)[1]
            buf = buffers.pop(node, None)
            extra = node._extra
            if extra is not None and (extra.thooks or extra.retain):
                buf = _tensor_pre(node, buf, ops)
            if captures is not None and node in captures:
                for nr, i in captures[node]:
                    g = buf if node._nout == 1 else buf[nr]
                    results[i] = g if g is None or results[i] is None else results[i] + g
                if node in capture_only:
                    continue
            out: Sequence[Any]
            if buf is None or (node._nout > 1 and all(b is None for b in buf)):
                out = (None,) * len(node.next_functions)
            else:
                if node._freed:
                    raise RuntimeError(FREED_MSG)
                for vc, version, _, _ in node._saved:
                    if vc[0] != version:
                        node.check_saved()
                if extra is not None and extra.prehooks:
                    buf = _run_prehooks(extra.prehooks, node, buf, ops)
                out = node.apply(buf, ops)
                if extra is not None and extra.hooks:
                    out = _run_posthooks(extra.hooks, node, out, buf, ops)
                if anomaly:
                    _check_anomaly(node, out, ops)
            if not retain_graph and node._saves:
                node._freed = True
                node._release()
            for (child, nr), g in zip(node.next_functions, out, strict=False):
                if child is None:
                    continue
                d = deps.get(child)
                if d is None:
                    continue  # pruned: leads to no requested input
                if g is not None:
                    if child._nout == 1:
                        old = buffers.get(child)
                        buffers[child] = g if old is None else old + g
                    else:
                        _add_to_buffer(buffers, child, nr, g)
                if d == 1:
                    del deps[child]
                    push(heap, (-child._seq, child))
                else:
                    deps[child] = d - 1
            out = ()  # drop references so AccumulateGrad may keep the buffer
            g = buf = old = None
    finally:
        STATE.enabled = prev_mode

    if inputs is None:
        return None
    assert captures is not None
    if accumulate:
        for i, t in enumerate(inputs):
            if t.grad_fn is not None and results[i] is not None:
                _accumulate_nonleaf(t, results[i], ops)
        return None
    for i, r in enumerate(results):
        if r is None and not allow_unused:
            raise RuntimeError(
                f"The differentiated Tensor at index {i} appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
    return [None if r is None else ops.wrap(r) for r in results]


_BACKEND: list[Any] = []


def partial_grads(
    roots: Sequence[Tensor], seeds: Sequence[Any], inputs: Sequence[Tensor], *, create_graph: bool
) -> list[Any]:
    """Gradients of ``roots`` (seeded with ``seeds``) for ``inputs``, None for an unused input;
    the graph is kept and no ``.grad`` changes (gradcheck, composite double backward)."""
    grads = run_backward(
        roots,
        seeds,
        retain_graph=True,
        create_graph=create_graph,
        inputs=inputs,
        accumulate=False,
        allow_unused=True,
    )
    return grads or []


def _backend() -> Any:
    if not _BACKEND:
        from fivefold.grad.functions import backend

        _BACKEND.append(backend)
    return _BACKEND[0]


def _add_to_buffer(buffers: dict[Node, Any], node: Node, nr: int, g: Any) -> None:
    if node._nout == 1:
        old = buffers.get(node)
        buffers[node] = g if old is None else old + g
    else:
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node._nout
        buf[nr] = g if buf[nr] is None else buf[nr] + g


def _count_dependencies(roots: list[Node], targets: set[Node] | None) -> dict[Node, int]:
    """In-edge counts over the reachable graph (pruned to paths reaching ``targets`` if given)."""
    deps: dict[Node, int] = {}
    seen = set(roots)
    stack = list(seen)
    if targets is None:
        while stack:
            for child, _ in stack.pop().next_functions:
                if child is not None:
                    if child in deps:
                        deps[child] += 1
                    else:
                        deps[child] = 1
                        if child not in seen:
                            seen.add(child)
                            stack.append(child)
        for r in roots:
            deps.setdefault(r, 0)
        return deps
    order: list[Node] = []
    while stack:
        node = stack.pop()
        order.append(node)
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    needed = _needed(order, seen, targets)
    pruned: dict[Node, int] = {n: 0 for n in needed}
    for node in needed:
        for child, _ in node.next_functions:
            if child is not None and child in needed:
                pruned[child] += 1
    return pruned


def _needed(order: list[Node], seen: set[Node], targets: set[Node]) -> set[Node]:
    """Nodes from which some target is reachable (walks the graph children-first, iteratively)."""
    needed: set[Node] = set()
    done: set[Node] = set()
    for root in order:
        if root in done:
            continue
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if node in targets or any(c in needed for c, _ in node.next_functions if c is not None):
                    needed.add(node)
                done.add(node)
                continue
            if node in done:
                continue
            stack.append((node, True))
            for child, _ in node.next_functions:
                if child is not None and child not in done:
                    stack.append((child, False))
    return needed


def _tensor_pre(node: Node, buf: Any, ops: Any) -> Any:
    """Runs hooks registered on non-leaf tensors, then fills ``.grad`` of those that retain it."""
    assert node._extra is not None
    single = node._nout == 1
    grads = [buf] if single else list(buf if buf is not None else [None] * node._nout)
    for nr, hooks in node._extra.thooks.items():
        if grads[nr] is not None:
            grads[nr] = _run_tensor_hooks(hooks, grads[nr], ops)
    for nr, ref in node._extra.retain.items():
        t = ref()
        if t is not None and grads[nr] is not None:
            _accumulate_nonleaf(t, grads[nr], ops)
    return grads[0] if single else grads


def _accumulate_nonleaf(t: Tensor, g: Any, ops: Any) -> None:
    new = ops.wrap(g.copy() if ops.raw else g)
    t._grad = new if t._grad is None else t._grad + new


def _run_prehooks(prehooks: list[Callable[..., Any]], node: Node, buf: Any, ops: Any) -> Any:
    single = node._nout == 1
    grads = tuple(ops.wrap(g) for g in ([buf] if single else buf))
    for hook in list(prehooks):
        result = hook(grads)
        if result is not None:
            grads = tuple(result)
    out = [ops.unwrap(g) for g in grads]
    return out[0] if single else out


def _run_posthooks(
    hooks: list[Callable[..., Any]], node: Node, out: Sequence[Any], buf: Any, ops: Any
) -> Sequence[Any]:
    grad_inputs = tuple(ops.wrap(g) for g in out)
    grad_outputs = tuple(ops.wrap(g) for g in ([buf] if node._nout == 1 else buf))
    for hook in list(hooks):
        result = hook(grad_inputs, grad_outputs)
        if result is not None:
            grad_inputs = tuple(result)
    return [ops.unwrap(g) for g in grad_inputs]


def _check_anomaly(node: Node, out: Sequence[Any], ops: Any) -> None:
    import numpy as np

    if not STATE.anomaly_check_nan:
        return
    for i, g in enumerate(out):
        if g is None:
            continue
        arr = g if ops.raw else g._data
        if np.isnan(arr).any():
            trace = node.metadata.get("traceback_")
            if trace:
                warnings.warn(
                    f"Error detected in {node.name()}. Traceback of forward call that caused the error:\n"
                    + trace,
                    stacklevel=2,
                )
            raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th output.")
