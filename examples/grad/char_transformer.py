"""A tiny character-level transformer (embedding, causal self-attention, MLP, LayerNorm) on a
short text; the next-character loss falls as it trains.

Run: python examples/grad/char_transformer.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fivefold.grad as fg
from fivefold.grad import nn

TEXT = (
    "the quick brown fox jumps over the lazy dog. "
    "a gradient flows backwards through the graph, node by node, until it reaches the leaves. "
) * 4


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Any, mask: Any) -> Any:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int, context: int, dim: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.mask = fg.tensor(np.triu(np.ones((context, context), bool), 1))

    def forward(self, idx: Any) -> Any:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(fg.arange(t))
        for block in self.blocks:
            x = block(x, self.mask[:t, :t])
        return self.head(self.ln(x))


def main(steps: int = 60, context: int = 16, batch: int = 16, seed: int = 0) -> list[float]:
    fg.manual_seed(seed)
    chars = sorted(set(TEXT))
    data = np.array([chars.index(c) for c in TEXT])
    model = TinyTransformer(len(chars), context)
    opt = fg.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        starts = rng.integers(0, len(data) - context - 1, batch)
        x = fg.tensor(np.stack([data[s : s + context] for s in starts]))
        y = fg.tensor(np.stack([data[s + 1 : s + context + 1] for s in starts]))
        logits = model(x)
        loss = fg.nn.functional.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    history = main()
    print(f"loss {history[0]:.3f} -> {history[-1]:.3f} over {len(history)} steps")
