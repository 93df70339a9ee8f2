"""Neural-network ops: softmax, log_softmax, layer_norm, dropout, embedding and the losses.

Fused nodes (one node per op, as torch has) keep the Python overhead of a training step
low. Their formulas for higher-order gradients either reuse the same code on tensors or,
for layer_norm, differentiate a composite of primitive ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.creation import default_generator
from fivefold.grad.engine import partial_grads
from fivefold.grad.functions.common import _meta, _saved, broadcasting, record
from fivefold.grad.functions.elementwise import mul
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _dim, _wrap


def _float(x: Any) -> Any:
    return x if x.dtype.kind == "f" else x.astype(D.default_float())


def composite_grads(
    fn: Callable[..., Tensor], inputs: tuple[Any, ...], g: Tensor, needed: tuple[bool, ...]
) -> list[Any]:
    """Gradients of ``fn(*inputs)`` w.r.t. the needed inputs, recorded (for double backward)."""
    out = fn(*inputs)
    wanted = [t for t, n in zip(inputs, needed, strict=True) if n and t is not None]
    it = iter(partial_grads([out], [g], wanted, create_graph=True))
    return [next(it) if n and t is not None else None for t, n in zip(inputs, needed, strict=True)]


class SoftmaxBackward0(Node):
    __slots__ = ("axis", "x", "y")
    axis: Any
    x: Any
    y: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        y = self.y if ops.raw else softmax(ops.v(self.x), self.axis)
        return (y * (g - ops.sum(g * y, self.axis, True)),)

    def _release(self) -> None:
        self.x = self.y = None


class LogSoftmaxBackward0(Node):
    __slots__ = ("axis", "x", "y")
    axis: Any
    x: Any
    y: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        y = self.y if ops.raw else log_softmax(ops.v(self.x), self.axis)
        return (g - ops.exp(y) * ops.sum(g, self.axis, True),)

    def _release(self) -> None:
        self.x = self.y = None


def _softmax_dim(dim: Any, ndim: int) -> int:
    if dim is None:
        dim = 0 if ndim in (0, 1, 3) else 1
    return _dim(int(dim), ndim)


def softmax(a: Tensor, dim: Any = None, dtype: Any = None) -> Tensor:
    x = _float(a._data if dtype is None else a._data.astype(D.to_np(dtype)))
    axis = _softmax_dim(dim, x.ndim)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)
    return record(out, a, SoftmaxBackward0, "result", axis=axis, x=a, y=out)


def log_softmax(a: Tensor, dim: Any = None, dtype: Any = None) -> Tensor:
    x = _float(a._data if dtype is None else a._data.astype(D.to_np(dtype)))
    axis = _softmax_dim(dim, x.ndim)
    shifted = x - x.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return record(out, a, LogSoftmaxBackward0, "result", axis=axis, x=a, y=out)


# ----------------------------------------------------------------------------- layer norm
class NativeLayerNormBackward0(Node):
    __slots__ = ("axes", "b", "eps", "rstd", "w", "x", "xhat")
    axes: Any
    b: Any
    eps: Any
    rstd: Any
    w: Any
    x: Any
    xhat: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any, Any]:
        nf = self.next_functions
        need = tuple(f is not None for f, _ in nf)
        if not ops.raw:
            shape = tuple(self.x.shape[len(self.x.shape) - len(self.axes) :])
            return tuple(
                composite_grads(
                    lambda x, w, b: _layer_norm_composite(x, shape, w, b, self.eps),
                    (self.x, self.w, self.b),
                    g,
                    need,
                )
            )  # type: ignore[return-value]
        axes, xhat, rstd = self.axes, self.xhat, self.rstd
        w = None if self.w is None else self.w._data
        batch_axes = tuple(range(g.ndim - len(axes)))
        gx = gw = gb = None
        if need[0]:
            dxhat = g * w if w is not None else g
            n = int(np.prod([g.shape[a] for a in axes]))
            gx = rstd * (
                dxhat
                - dxhat.sum(axis=axes, keepdims=True) / n
                - xhat * ((dxhat * xhat).sum(axis=axes, keepdims=True) / n)
            )
        if need[1]:
            gw = (g * xhat).sum(axis=batch_axes)
        if need[2]:
            gb = g.sum(axis=batch_axes)
        return (gx, gw, gb)

    def _release(self) -> None:
        self.x = self.w = self.b = self.xhat = self.rstd = None


def _layer_norm_composite(x: Tensor, shape: tuple[int, ...], w: Any, b: Any, eps: float) -> Tensor:
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    mu = x.mean(dims, keepdim=True)
    c = x - mu
    out: Tensor = c / ((c * c).mean(dims, keepdim=True) + eps).sqrt()
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out


def layer_norm(
    x: Tensor,
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    xd = x._data
    if tuple(xd.shape[xd.ndim - len(shape) :]) != shape:
        raise RuntimeError(
            f"Given normalized_shape=[{', '.join(map(str, shape))}], expected input with shape "
            f"[*, {', '.join(map(str, shape))}], but got input of size[{', '.join(map(str, xd.shape))}]"
        )
    axes = tuple(range(xd.ndim - len(shape), xd.ndim))
    mu = xd.mean(axis=axes, keepdims=True)
    c = xd - mu
    rstd = 1.0 / np.sqrt((c * c).mean(axis=axes, keepdims=True) + eps)
    xhat = c * rstd
    out = xhat
    if weight is not None:
        out = out * weight._data
    if bias is not None:
        out = out + bias._data
    out = out.astype(xd.dtype, copy=False)
    rg = x._rg or (weight is not None and weight._rg) or (bias is not None and bias._rg)
    if STATE.enabled and rg:
        edges = (
            edge(x),
            edge(weight) if weight is not None else (None, 0),
            edge(bias) if bias is not None else (None, 0),
        )
        node = NativeLayerNormBackward0(edges)
        node.axes, node.x, node.w, node.b, node.eps = axes, x, weight, bias, eps
        node.xhat, node.rstd = xhat, rstd
        node._saved = (_saved(x),) + ((_saved(weight),) if weight is not None else ())
        return _wrap(out, node)
    return _wrap(out, None)


# ----------------------------------------------------------------------------- dropout / embedding
def dropout(a: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return a
    if p == 1:
        return mul(a, 0.0)
    keep = default_generator().random(a._data.shape) >= p
    mask = keep.astype(a._data.dtype) * np.asarray(1.0 / (1.0 - p), a._data.dtype)
    return mul(a, _wrap(mask, None))


class EmbeddingBackward0(Node):
    __slots__ = ("idx", "padding_idx", "shape")
    idx: Any
    padding_idx: Any
    shape: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        idx = self.idx
        if self.padding_idx is not None:
            keep = (idx != self.padding_idx)[..., None]
            g = g * ops.const(keep.astype(ops.unwrap(g).dtype))
        flat = ops.reshape(g, (-1, self.shape[1]))
        return (ops.index_put(self.shape, ops.unwrap(g).dtype, (idx.reshape(-1),), flat, True),)

    def _release(self) -> None:
        self.idx = None


def embedding(index: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    idx = index._data
    if idx.dtype.kind not in "iu":
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar types: "
            f"Long, Int; but got torch.{D.BY_NP[idx.dtype].name} instead (while checking arguments "
            "for embedding)"
        )
    w = weight._data
    if idx.size and (idx.min() < -w.shape[0] or idx.max() >= w.shape[0]):
        raise IndexError("index out of range in self")
    out = w[idx]
    if STATE.enabled and weight._rg:
        node = EmbeddingBackward0((edge(weight),))
        if padding_idx is not None and padding_idx < 0:
            padding_idx += w.shape[0]
        node.idx, node.padding_idx, node.shape = idx, padding_idx, w.shape
        return _wrap(out, node)
    return _wrap(out, None)


# ----------------------------------------------------------------------------- losses
def _reduce(loss: Any, reduction: str) -> Any:
    if reduction == "mean":
        return np.asarray(loss.mean(), loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), loss.dtype)
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce_grad(g: Any, shape: tuple[int, ...], reduction: str, ops: Any) -> Any:
    if reduction == "none":
        return g
    n = int(np.prod(shape)) if reduction == "mean" else 1
    return ops.expand(g / n if n != 1 else g, shape)


class MseLossBackward0(Node):
    __slots__ = ("a", "b", "reduction")
    a: Any
    b: Any
    reduction: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        a, b = ops.v(self.a), ops.v(self.b)
        diff = a - b
        if ops.raw:  # torch's order: norm * (input - target) * grad
            norm = 2.0 / diff.size if self.reduction == "mean" else 2.0
            gd = (norm * diff) * g
        else:
            gd = _reduce_grad(g, tuple(ops.unwrap(diff).shape), self.reduction, ops) * diff * 2
        nf = self.next_functions
        ga = ops.fix(gd, *_meta(self.a)) if nf[0][0] is not None else None
        gb = ops.fix(-gd, *_meta(self.b)) if nf[1][0] is not None else None
        return (ga, gb)

    def _release(self) -> None:
        self.a = self.b = None


def mse_loss(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    diff = broadcasting(np.subtract, a._data, b._data)
    out = _reduce(diff * diff, reduction)
    if STATE.enabled and (a._rg or b._rg):
        node = MseLossBackward0((edge(a), edge(b)))
        node.a, node.b, node.reduction = a, b, reduction
        node._saved = (_saved(a), _saved(b))
        return _wrap(out, node)
    return _wrap(out, None)


class NllLossBackward0(Node):
    __slots__ = ("coef",)
    coef: Any
    _saves = True

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        coef = self.coef
        if ops.unwrap(g).ndim:  # reduction='none': one gradient per sample
            g = ops.reshape(g, (*tuple(ops.unwrap(g).shape[:1]), 1, *tuple(ops.unwrap(g).shape[1:])))
        return (g * ops.const(coef),)

    def _release(self) -> None:
        self.coef = None


class NllLoss2DBackward0(NllLossBackward0):
    __slots__ = ()


def nll_loss(
    logp: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    x = logp._data
    t = target._data
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {D.BY_NP[t.dtype].name.capitalize()}")
    squeeze = x.ndim == 1
    if squeeze:
        x, t = x[None], t[None]
    n, c = x.shape[0], x.shape[1]
    if t.shape[0] != n:
        raise ValueError(f"Expected input batch_size ({n}) to match target batch_size ({t.shape[0]}).")
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    if safe.size and (safe.min() < 0 or safe.max() >= c):
        raise IndexError(f"Target {int(safe.max() if safe.max() >= c else safe.min())} is out of bounds.")
    w = np.ones(c, x.dtype) if weight is None else weight._data.astype(x.dtype)
    wt = w[safe] * valid
    picked = np.take_along_axis(x, safe[:, None], axis=1)[:, 0]
    losses = -picked * wt
    if reduction == "mean":
        total = wt.sum()
        out = np.asarray(losses.sum() / total, x.dtype)
        scale = (-wt / total).astype(x.dtype)
    elif reduction == "sum":
        out = np.asarray(losses.sum(), x.dtype)
        scale = (-wt).astype(x.dtype)
    elif reduction == "none":
        out = losses[0] if squeeze else losses
        scale = (-wt).astype(x.dtype)
    else:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if STATE.enabled and logp._rg:
        coef = np.zeros(x.shape, x.dtype)
        np.put_along_axis(coef, safe[:, None], scale[:, None], axis=1)
        if squeeze:
            coef = coef[0]
        node = (NllLossBackward0 if x.ndim == 2 else NllLoss2DBackward0)((edge(logp),))
        node.coef = coef
        return _wrap(out, node)
    return _wrap(out, None)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    logp = log_softmax(logits, 1 if logits.ndim > 1 else 0)
    if target._data.dtype.kind == "f":  # class probabilities
        from fivefold.grad.functions.reduce import mean
        from fivefold.grad.functions.reduce import sum as rsum

        per = -rsum(mul(logp, target), 1 if logits.ndim > 1 else 0)
        if reduction == "mean":
            return mean(per) if logits.ndim > 1 else per
        return rsum(per) if reduction == "sum" else per
    if label_smoothing:
        from fivefold.grad.functions.reduce import mean
        from fivefold.grad.functions.reduce import sum as rsum

        c = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
        nll = nll_loss(logp, target, weight, ignore_index, reduction)
        smooth = -rsum(logp, 1 if logits.ndim > 1 else 0)
        smooth = mean(smooth) if reduction == "mean" else (rsum(smooth) if reduction == "sum" else smooth)
        return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)
    return nll_loss(logp, target, weight, ignore_index, reduction)


class BinaryCrossEntropyWithLogitsBackward0(Node):
    __slots__ = ("pos_weight", "reduction", "weight", "x", "y")
    pos_weight: Any
    reduction: Any
    weight: Any
    x: Any
    y: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any]:
        x, y = ops.v(self.x), ops.v(self.y)
        gg = _reduce_grad(g, tuple(ops.unwrap(x).shape), self.reduction, ops)
        w = None if self.weight is None else ops.v(self.weight)
        pw = None if self.pos_weight is None else ops.v(self.pos_weight)
        s = ops.sigmoid(x)
        if pw is None:
            dx = s - y
        else:
            dx = (pw * y + 1 - y) * s - pw * y
        if w is not None:
            dx = dx * w
        nf = self.next_functions
        gx = ops.fix(gg * dx, *_meta(self.x)) if nf[0][0] is not None else None
        gy = None
        if nf[1][0] is not None:
            dy = -x if pw is None else ops.log(1 - s) - pw * ops.log(s)
            if w is not None:
                dy = dy * w
            gy = ops.fix(gg * dy, *_meta(self.y))
        return (gx, gy)

    def _release(self) -> None:
        self.x = self.y = self.weight = self.pos_weight = None


def binary_cross_entropy_with_logits(
    x: Tensor,
    y: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    xd, yd = x._data, y._data
    if xd.shape != yd.shape:
        raise ValueError(
            f"Target size ({tuple(yd.shape)}) must be the same as input size ({tuple(xd.shape)})"
        )
    log_sig = -np.logaddexp(0, -xd)
    log_one_minus = -np.logaddexp(0, xd)
    if pos_weight is None:
        loss = -(yd * log_sig + (1 - yd) * log_one_minus)
    else:
        loss = -(pos_weight._data * yd * log_sig + (1 - yd) * log_one_minus)
    if weight is not None:
        loss = loss * weight._data
    out = _reduce(loss.astype(xd.dtype, copy=False), reduction)
    if STATE.enabled and (x._rg or y._rg):
        node = BinaryCrossEntropyWithLogitsBackward0((edge(x), edge(y)))
        node.x, node.y, node.weight, node.pos_weight, node.reduction = x, y, weight, pos_weight, reduction
        node._saved = (_saved(x), _saved(y))
        return _wrap(out, node)
    return _wrap(out, None)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v, built from primitive ops."""
    from fivefold.grad.functions.index import masked_fill
    from fivefold.grad.functions.linalg import matmul
    from fivefold.grad.functions.shape import transpose

    d = q._data.shape[-1]
    scores = mul(matmul(q, transpose(k, -2, -1)), scale if scale is not None else 1.0 / np.sqrt(d))
    lq, lk = q._data.shape[-2], k._data.shape[-2]
    if is_causal:
        scores = masked_fill(scores, _wrap(np.triu(np.ones((lq, lk), bool), 1), None), float("-inf"))
    if attn_mask is not None:
        if attn_mask._data.dtype == D.NP_BOOL:
            scores = masked_fill(scores, _wrap(~attn_mask._data, None), float("-inf"))
        else:
            scores = scores + attn_mask
    attn = softmax(scores, -1)
    if dropout_p:
        attn = dropout(attn, dropout_p)
    return matmul(attn, v)
