"""``MultiheadAttention`` with torch's parameter layout (packed in_proj, out_proj Linear)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fivefold.grad import _dtype as D
from fivefold.grad.nn import functional as F
from fivefold.grad.nn import init
from fivefold.grad.nn.layers import Linear, _param
from fivefold.grad.nn.module import Module
from fivefold.grad.nn.parameter import Parameter
from fivefold.grad.tensor import Tensor, _wrap


class MultiheadAttention(Module):
    """softmax(QK^T/sqrt(d) + mask) V over ``num_heads`` heads; ``batch_first`` as in torch."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = (
            embed_dim,
            num_heads,
            dropout,
            batch_first,
        )
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = _param(3 * embed_dim, embed_dim, dtype=dtype)
        self.in_proj_bias: Parameter | None = _param(3 * embed_dim, dtype=dtype) if bias else None
        if not bias:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            assert self.out_proj.bias is not None
            init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        tgt, bsz, e = query.shape
        src = key.shape[0]
        h, d = self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        q = F.linear(query, w[:e], None if b is None else b[:e])
        k = F.linear(key, w[e : 2 * e], None if b is None else b[e : 2 * e])
        v = F.linear(value, w[2 * e :], None if b is None else b[2 * e :])
        # (L, N, E) -> (N, H, L, d)
        q = q.reshape(tgt, bsz * h, d).transpose(0, 1).reshape(bsz, h, tgt, d)
        k = k.reshape(src, bsz * h, d).transpose(0, 1).reshape(bsz, h, src, d)
        v = v.reshape(src, bsz * h, d).transpose(0, 1).reshape(bsz, h, src, d)
        scores = (q * math.sqrt(1.0 / d)) @ k.transpose(-2, -1)
        mask = self._additive_mask(attn_mask, key_padding_mask, bsz, tgt, src, scores._data.dtype, is_causal)
        if mask is not None:
            scores = scores + _wrap(mask, None)
        attn = F.softmax(scores, -1)
        if self.dropout and self.training:
            attn = F.dropout(attn, self.dropout)
        out = attn @ v  # (N, H, L, d)
        out = out.permute(2, 0, 1, 3).reshape(tgt, bsz, e)
        out = self.out_proj(out)
        if self.batch_first:
            out = out.transpose(0, 1)
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
        return out, weights

    def _additive_mask(
        self,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        bsz: int,
        tgt: int,
        src: int,
        dtype: Any,
        is_causal: bool,
    ) -> np.ndarray[Any, Any] | None:
        mask = None
        if attn_mask is not None:
            m = attn_mask._data
            add = np.where(m, -np.inf, 0.0).astype(dtype) if m.dtype == D.NP_BOOL else m.astype(dtype)
            mask = add.reshape(bsz, self.num_heads, tgt, src) if add.ndim == 3 else add
        elif is_causal:
            mask = np.where(np.triu(np.ones((tgt, src), bool), 1), -np.inf, 0.0).astype(dtype)
        if key_padding_mask is not None:
            kp = key_padding_mask._data
            add = np.where(kp, -np.inf, 0.0) if kp.dtype == D.NP_BOOL else kp
            add = add.astype(dtype).reshape(bsz, 1, 1, src)
            mask = add if mask is None else mask + add
        return mask
