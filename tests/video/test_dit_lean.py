"""The lean DiT hot path computes what the plain one did (same weights, float rounding only).

``plain_forward`` is session 1's forward written out with the textbook ops: q/k/v by
view-permute-unbind, RoPE by slicing (even, odd) channels and stacking, ``F.gelu`` with the tanh
approximation, ``x + gate * branch``. The model's forward (fused passes, one complex multiply
for RoPE, a sigmoid-based GELU on CPU) must match it within 1e-5.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from fivefold.video.dit import DiT, DiTConfig, gelu_tanh, paper_config
from fivefold.video.patches import patchify, unpatchify
from fivefold.video.rope import rope_tables

from .conftest import TINY_DIT


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def _self_attention(attn, x, tables, grid, mode):  # type: ignore[no-untyped-def]
    b, n, d = x.shape
    heads = attn.heads
    q, k, v = attn.qkv(x).view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if tables is not None:
        q, k = _rope(q, *tables), _rope(k, *tables)
    pattern = {"spatial": "b a (t s) e -> (b t) a s e", "temporal": "b a (t s) e -> (b s) a t e"}
    if mode in pattern:
        q, k, v = (rearrange(z, pattern[mode], t=grid[0]) for z in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    if mode in pattern:
        back = " -> ".join(reversed(pattern[mode].split(" -> ")))
        out = rearrange(out, back, b=b)
    return attn.proj(out.transpose(1, 2).reshape(b, n, d))


def _cross_attention(cross, x, ctx, ctx_mask):  # type: ignore[no-untyped-def]
    b, n, d = x.shape
    heads = cross.heads
    q = cross.q(cross.norm(x)).view(b, n, heads, d // heads).transpose(1, 2)
    k, v = cross.kv(ctx).view(b, ctx.shape[1], 2, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
    mask = None if ctx_mask is None else ctx_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return cross.proj(out.transpose(1, 2).reshape(b, n, d))


def _modulate(x, shift, scale):  # type: ignore[no-untyped-def]
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def plain_forward(model: DiT, x, t, y, y_mask=None, known=None, known_mask=None):  # type: ignore[no-untyped-def]
    cfg = model.cfg
    b, _, tt, hh, ww = x.shape
    if cfg.known_frames:
        m = (
            torch.zeros(b, 1, tt, hh, ww)
            if known_mask is None
            else known_mask.float()[:, None, :, None, None]
        )
        m = m.expand(b, 1, tt, hh, ww)
        x = torch.cat([x, known * m, m], dim=1)
    tokens, grid = patchify(x, cfg.patch)
    h = model.x_embedder(tokens)
    tables = None
    if cfg.pos == "sincos":
        h = h + model.pos_embed
    else:
        tables = rope_tables(grid, cfg.hidden // cfg.heads)
    c = model.t_embedder(t)
    ctx = None
    if cfg.cond == "class":
        c = c + model.y_embedder(y)
    else:
        c = c + model.y_embedder(y.mean(dim=1))
        ctx = model.ctx_embedder(y)
    for block in model.blocks:
        s1, sc1, g1, s2, sc2, g2 = block.adaLN_modulation(c).chunk(6, dim=1)
        h = h + g1.unsqueeze(1) * _self_attention(
            block.attn, _modulate(block.norm1(h), s1, sc1), tables, grid, block.mode
        )
        if block.cross is not None:
            h = h + _cross_attention(block.cross, h, ctx, y_mask)
        inner = F.gelu(block.mlp.fc1(_modulate(block.norm2(h), s2, sc2)), approximate="tanh")
        h = h + g2.unsqueeze(1) * block.mlp.fc2(inner)
    fl = model.final_layer
    shift, scale = fl.adaLN_modulation(c).chunk(2, dim=1)
    out = fl.linear(_modulate(fl.norm_final(h), shift, scale))
    return unpatchify(out, grid, cfg.patch, cfg.out_channels)


def _jittered(cfg: DiTConfig) -> DiT:
    torch.manual_seed(0)
    model = DiT(cfg)
    with torch.no_grad():  # adaLN-Zero starts at zero; give every branch weight
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("attention", ["full", "split"])
def test_text_rope_known_frames_forward_and_gradients_match_the_plain_path(attention: str) -> None:
    model = _jittered(dataclasses.replace(TINY_DIT, hidden=64, heads=4, attention=attention))  # type: ignore[arg-type]
    x = torch.randn(3, 4, 3, 4, 6)
    t = torch.tensor([3.0, 500.0, 999.0])
    y = torch.randn(3, 7, 384)
    y_mask = torch.rand(3, 7) > 0.3
    y_mask[:, 0] = True
    known = torch.randn_like(x)
    known_mask = torch.tensor([[True, False, False], [False, False, True], [False, False, False]])
    plain = plain_forward(model, x, t, y, y_mask, known, known_mask)
    lean = model(x, t, y, y_mask=y_mask, y_pooled=y.mean(dim=1), known=known, known_mask=known_mask)
    assert plain.abs().max() > 0.5  # the blocks do something
    torch.testing.assert_close(lean, plain, rtol=0, atol=1e-5)
    lean.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    plain.square().sum().backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_class_sincos_paper_layout_matches_the_plain_path() -> None:
    model = _jittered(
        dataclasses.replace(paper_config("DiT-S/4"), depth=2, hidden=96, heads=3, input_size=(1, 16, 16))
    )
    x = torch.randn(2, 4, 1, 16, 16)
    t, y = torch.tensor([10.0, 800.0]), torch.tensor([7, 1000])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), plain_forward(model, x, t, y), rtol=0, atol=1e-5)


def test_gelu_matches_torch_in_value_and_gradient() -> None:
    x = torch.linspace(-8, 8, 4001, dtype=torch.float64, requires_grad=True)
    ours = gelu_tanh(x)
    ref = F.gelu(x, approximate="tanh")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(gelu_tanh, (torch.randn(5, 3, dtype=torch.float64, requires_grad=True),))


def test_bf16_autocast_takes_the_real_valued_paths() -> None:
    """No complex bf16 exists: under autocast RoPE and GELU fall back to real ops (as on a GPU)."""
    model = _jittered(dataclasses.replace(TINY_DIT, hidden=64, heads=4))
    x, t, y = torch.randn(2, 4, 3, 4, 4), torch.tensor([5.0, 600.0]), torch.randn(2, 5, 384)
    with torch.no_grad():
        full = model(x, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x, t, y)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, rtol=0.05, atol=0.1)
