"""Convolution (im2col + one matmul per group) and max/average pooling.

Windows come from NumPy's ``sliding_window_view`` (no copy until the columns are
gathered); the input gradient is scattered back kernel-offset by kernel-offset, which is
KH*KW vectorised additions rather than a loop over pixels. For double backward each node
differentiates the same op rebuilt from primitives (``unfold`` + matmul / max / mean).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fivefold.grad.functions.common import _saved, record
from fivefold.grad.graph import Node, edge
from fivefold.grad.mode import STATE
from fivefold.grad.tensor import Tensor, _wrap


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def unfold(
    x: Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    fill: float = 0.0,
) -> Tensor:
    """Differentiable sliding windows (N, C, OH, OW, KH, KW) from primitive ops (for double backward)."""
    from fivefold.grad.creation import full

    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph or pw:
        padded = full((n, c, h + 2 * ph, w + 2 * pw), fill, dtype=x.dtype)
        padded[:, :, ph : ph + h, pw : pw + w] = x
        x = padded
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    rows = (np.arange(oh) * sh)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
    cols = (np.arange(ow) * sw)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
    return x[:, :, rows, cols]


def _conv_composite(x: Tensor, w: Tensor, b: Any, node: ConvolutionBackward0) -> Tensor:
    from fivefold.grad.functions.shape import cat

    o, cg, kh, kw = w.shape
    win = unfold(x, (kh, kw), node.stride, node.padding, node.dilation)
    n, _, oh, ow = win.shape[:4]
    og = o // node.groups
    parts = []
    for k in range(node.groups):
        cols = win[:, k * cg : (k + 1) * cg].permute(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, cg * kh * kw)
        parts.append(cols @ w[k * og : (k + 1) * og].reshape(og, -1).T)
    out: Tensor = cat(parts, 1).reshape(n, oh, ow, o).permute(0, 3, 1, 2)
    if b is not None:
        out = out + b.reshape(1, o, 1, 1)
    return out


def _windows(xp: Any, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    win = sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


class ConvolutionBackward0(Node):
    __slots__ = ("b", "cols", "dilation", "groups", "padding", "stride", "w", "x", "xshape")
    b: Any
    cols: Any
    dilation: Any
    groups: Any
    padding: Any
    stride: Any
    w: Any
    x: Any
    xshape: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any, Any, Any]:
        if not ops.raw:  # double backward: differentiate the same convolution built from primitives
            from fivefold.grad.functions.nnops import composite_grads

            need = tuple(f is not None for f, _ in self.next_functions) + (False,) * (
                3 - len(self.next_functions)
            )
            grads = composite_grads(
                lambda x, w, b: _conv_composite(x, w, b, self), (self.x, self.w, self.b), g, need
            )
            return (grads[0], grads[1], grads[2])
        nf = self.next_functions
        w = self.w._data
        n, _, oh, ow = g.shape
        o, cg, kh, kw = w.shape
        groups = self.groups
        og = o // groups
        g2 = g.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        gx = gw = gb = None
        if nf[1][0] is not None:
            gw = np.empty_like(w)
            for k in range(groups):
                gw[k * og : (k + 1) * og] = (g2[:, k * og : (k + 1) * og].T @ self.cols[k]).reshape(
                    og, cg, kh, kw
                )
        if len(nf) > 2 and nf[2][0] is not None:
            gb = g.sum(axis=(0, 2, 3))
        if nf[0][0] is not None:
            ph, pw = self.padding
            xs = self.xshape
            gxp = np.zeros((xs[0], xs[1], xs[2] + 2 * ph, xs[3] + 2 * pw), g.dtype)
            sh, sw = self.stride
            dh, dw = self.dilation
            for k in range(groups):
                gcols = g2[:, k * og : (k + 1) * og] @ w[k * og : (k + 1) * og].reshape(og, -1)
                gcols = gcols.reshape(n, oh, ow, cg, kh, kw)
                for i in range(kh):
                    for j in range(kw):
                        r0, c0 = i * dh, j * dw
                        gxp[
                            :,
                            k * cg : (k + 1) * cg,
                            r0 : r0 + sh * (oh - 1) + 1 : sh,
                            c0 : c0 + sw * (ow - 1) + 1 : sw,
                        ] += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
            gx = gxp[:, :, ph : ph + xs[2], pw : pw + xs[3]]
        return (gx, gw, gb)

    def _release(self) -> None:
        self.cols = self.w = self.x = self.b = None


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    xd, w = x._data, weight._data
    if xd.ndim == 3:
        from fivefold.grad.functions.shape import squeeze, unsqueeze

        return squeeze(conv2d(unsqueeze(x, 0), weight, bias, stride, padding, dilation, groups), 0)
    if xd.ndim != 4:
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: "
            f"[{', '.join(map(str, xd.shape))}]"
        )
    stride, dilation = _pair(stride), _pair(dilation)
    o, cg, kh, kw = w.shape
    if xd.shape[1] != cg * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size [{', '.join(map(str, w.shape))}], expected "
            f"input[{', '.join(map(str, xd.shape))}] to have {cg * groups} channels, but got "
            f"{xd.shape[1]} channels instead"
        )
    if padding == "same":
        padding = ((kh - 1) * dilation[0] // 2, (kw - 1) * dilation[1] // 2)
    elif padding == "valid":
        padding = (0, 0)
    ph, pw = _pair(padding)
    xp = np.pad(xd, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else xd
    win = _windows(xp, kh, kw, stride, dilation)
    n, _, oh, ow = win.shape[:4]
    og = o // groups
    out = np.empty((n, oh, ow, o), xd.dtype)
    cols_all = []
    for k in range(groups):
        cols = win[:, k * cg : (k + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, cg * kh * kw)
        cols_all.append(cols)
        out[..., k * og : (k + 1) * og] = (cols @ w[k * og : (k + 1) * og].reshape(og, -1).T).reshape(
            n, oh, ow, og
        )
    if bias is not None:
        out += bias._data
    out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    if STATE.enabled and (x._rg or weight._rg or (bias is not None and bias._rg)):
        edges = (edge(x), edge(weight)) + ((edge(bias),) if bias is not None else ())
        node = ConvolutionBackward0(edges)
        node.x, node.w, node.b, node.cols, node.groups = x, weight, bias, cols_all, groups
        node.stride, node.padding, node.dilation, node.xshape = stride, (ph, pw), dilation, xd.shape
        node._saved = (_saved(x), _saved(weight))
        return _wrap(out, node)
    return _wrap(out, None)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    from fivefold.grad.functions.shape import squeeze, unsqueeze

    pad = (
        padding if isinstance(padding, str) else (0, int(padding if isinstance(padding, int) else padding[0]))
    )
    out = conv2d(
        unsqueeze(x, -2),
        unsqueeze(weight, -2),
        bias,
        (1, int(stride if isinstance(stride, int) else stride[0])),
        pad,
        (1, int(dilation if isinstance(dilation, int) else dilation[0])),
        groups,
    )
    return squeeze(out, -2)


class MaxPool2DWithIndicesBackward0(Node):
    __slots__ = ("cols", "params", "rows", "x", "xshape")
    cols: Any
    params: Any
    rows: Any
    x: Any
    xshape: Any

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        if not ops.raw:  # double backward through the same pooling built from primitives
            from fivefold.grad.functions.nnops import composite_grads

            def pool(x: Tensor) -> Tensor:
                kernel, stride, padding, dilation = self.params
                win = unfold(x, kernel, stride, padding, dilation, fill=float("-inf"))
                result: Tensor = win.reshape(*win.shape[:4], -1).max(-1)[0]
                return result

            return (composite_grads(pool, (self.x,), g, (True,))[0],)
        n, c = g.shape[:2]
        gx = np.zeros(self.xshape, g.dtype)
        ni = np.arange(n)[:, None, None, None]
        ci = np.arange(c)[None, :, None, None]
        np.add.at(gx, (ni, ci, self.rows, self.cols), g)
        return (gx,)

    def _release(self) -> None:
        self.rows = self.cols = self.x = None


def max_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor:
    xd = x._data
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    xp = np.pad(xd, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf) if ph or pw else xd
    win = _windows(xp, kh, kw, (sh, sw), (dh, dw))
    n, c, oh, ow = win.shape[:4]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    arg = flat.argmax(axis=-1)
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    if STATE.enabled and x._rg:
        node = MaxPool2DWithIndicesBackward0((edge(x),))
        node.rows = np.arange(oh)[:, None] * sh + (arg // kw) * dh - ph
        node.cols = np.arange(ow)[None, :] * sw + (arg % kw) * dw - pw
        node.xshape, node.x, node.params = xd.shape, x, ((kh, kw), (sh, sw), (ph, pw), (dh, dw))
        return _wrap(np.ascontiguousarray(out), node)
    return _wrap(np.ascontiguousarray(out), None)


class AvgPool2DBackward0(Node):
    __slots__ = ("kernel", "padding", "stride", "xshape")
    kernel: Any
    padding: Any
    stride: Any
    xshape: Any
    _saves = False

    def apply(self, g: Any, ops: Any) -> tuple[Any]:
        if not ops.raw:  # linear in g: backward of the mean over windows, recorded
            from fivefold.grad.creation import zeros
            from fivefold.grad.functions.nnops import composite_grads

            probe = zeros(*self.xshape, dtype=g.dtype, requires_grad=True)

            def pool(x: Tensor) -> Tensor:
                result: Tensor = unfold(x, self.kernel, self.stride, self.padding, (1, 1)).mean((-1, -2))
                return result

            return (composite_grads(pool, (probe,), g, (True,))[0],)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        _n, _c, oh, ow = g.shape
        xs = self.xshape
        gxp = np.zeros((xs[0], xs[1], xs[2] + 2 * ph, xs[3] + 2 * pw), g.dtype)
        share = g / (kh * kw)
        for i in range(kh):
            for j in range(kw):
                gxp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw] += share
        return (gxp[:, :, ph : ph + xs[2], pw : pw + xs[3]],)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    xd = x._data
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    ph, pw = _pair(padding)
    xp = np.pad(xd, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else xd
    win = _windows(xp, kh, kw, (sh, sw), (1, 1))
    out = np.ascontiguousarray(win.mean(axis=(-1, -2)).astype(xd.dtype))
    return record(
        out, x, AvgPool2DBackward0, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), xshape=xd.shape
    )
