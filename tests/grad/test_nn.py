"""nn modules and functional ops against torch with copied weights; Module bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.grad.conftest import assert_close, fg, torch


def _copy_weights(src: Any, dst: Any) -> None:
    with torch.no_grad():
        for (n1, p1), (n2, p2) in zip(src.named_parameters(), dst.named_parameters(), strict=True):
            assert n1 == n2 and tuple(p1.shape) == tuple(p2.shape)
            p2.copy_(torch.tensor(p1.detach().numpy()))


def _compare_module(
    ff_mod: Any, th_mod: Any, inputs: list[np.ndarray], call: Any = None, scale: float = 1.0
) -> None:
    _copy_weights(ff_mod, th_mod)
    call = call or (lambda m, *xs: m(*xs))
    outs = []
    for lib, mod in ((fg, ff_mod), (torch, th_mod)):
        xs = [lib.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
        out = call(mod, *xs)
        out = out[0] if isinstance(out, tuple) else out
        rng = np.random.default_rng(3)
        out.backward(lib.tensor(rng.standard_normal(tuple(out.shape)).astype(np.float32)))
        outs.append((out, [x.grad for x in xs], [p.grad for p in mod.parameters()]))
    (fo, fxg, fpg), (to, txg, tpg) = outs
    assert_close(fo, to, scale=scale * 10)
    for a, b in zip(fxg + fpg, txg + tpg, strict=True):
        if b is None:
            assert a is None
        else:
            assert_close(a, b, scale=scale * 50)


rng = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_linear_and_sequential() -> None:
    def make(L: Any) -> Any:
        return L.nn.Sequential(L.nn.Linear(5, 7), L.nn.GELU(), L.nn.Linear(7, 2, bias=False), L.nn.Sigmoid())

    _compare_module(make(fg), make(torch), [f32(4, 5)])
    _compare_module(fg.nn.Linear(3, 2), torch.nn.Linear(3, 2), [f32(2, 4, 3)])


def test_embedding_layernorm_dropout_eval() -> None:
    def make(L: Any) -> Any:
        return L.nn.Sequential(L.nn.Embedding(10, 6, padding_idx=0), L.nn.LayerNorm(6), L.nn.Dropout(0.3))

    ff, th = make(fg), make(torch)
    ff.eval()
    th.eval()
    idx = np.array([[0, 3, 3], [9, 1, 0]])
    _compare_module(ff, th, [idx])


def test_conv2d_and_pooling() -> None:
    for kwargs in ({"stride": 1, "padding": 1}, {"stride": 2, "padding": 0, "dilation": 2}, {"groups": 2}):
        _compare_module(
            fg.nn.Conv2d(4, 6, 3, **kwargs), torch.nn.Conv2d(4, 6, 3, **kwargs), [f32(2, 4, 7, 7)], scale=5
        )
    for L_pool in ("max", "avg"):
        outs = []
        for lib in (fg, torch):
            x = lib.tensor(f32(2, 3, 6, 6) if not outs else outs[0][2], requires_grad=True)
            pool = lib.nn.MaxPool2d(2) if L_pool == "max" else lib.nn.AvgPool2d(3, stride=2, padding=1)
            y = pool(x)
            y.sum().backward()
            outs.append((y, x.grad, x.detach().numpy()))
        assert_close(outs[0][0], outs[1][0])
        assert_close(outs[0][1], outs[1][1])


def test_conv1d_functional() -> None:
    x, w, b = f32(2, 3, 9), f32(4, 3, 3), f32(4)
    res = []
    for lib in (fg, torch):
        xs = [lib.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = lib.nn.functional.conv1d(*xs, stride=2, padding=1)
        (y * y).sum().backward()
        res.append([y] + [t.grad for t in xs])
    for a, b2 in zip(*res, strict=True):
        assert_close(a, b2, scale=10)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention(batch_first: bool) -> None:
    ff = fg.nn.MultiheadAttention(8, 2, batch_first=batch_first)
    th = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first)
    mask = np.triu(np.ones((4, 4), bool), 1)

    def call(m: Any, q: Any) -> Any:
        lib = fg if isinstance(m, fg.nn.Module) else torch
        return m(q, q, q, attn_mask=lib.tensor(mask))[0]

    shape = (3, 4, 8) if batch_first else (4, 3, 8)
    _compare_module(ff, th, [f32(*shape)], call=call, scale=10)
    _copy_weights(ff, th)
    q = f32(*shape)
    w_ff = ff(fg.tensor(q), fg.tensor(q), fg.tensor(q))[1]
    w_th = th(torch.tensor(q), torch.tensor(q), torch.tensor(q))[1]
    assert_close(w_ff, w_th, scale=10)


@pytest.mark.parametrize(
    "loss",
    ["mse", "ce", "ce_weight_ignore", "ce_sum", "ce_smooth", "ce_probs", "nll_none", "bce", "bce_pos_weight"],
)
def test_losses(loss: str) -> None:
    x = f32(6, 4)
    target = np.array([0, 3, 1, 1, 2, 0])
    probs = np.abs(f32(6, 4))
    probs /= probs.sum(1, keepdims=True)
    fns = {
        "mse": lambda L, a: L.nn.functional.mse_loss(a, L.tensor(probs)),
        "ce": lambda L, a: L.nn.functional.cross_entropy(a, L.tensor(target)),
        "ce_weight_ignore": lambda L, a: L.nn.CrossEntropyLoss(
            weight=L.tensor([1.0, 2.0, 0.5, 1.0]), ignore_index=1
        )(a, L.tensor(target)),
        "ce_sum": lambda L, a: L.nn.functional.cross_entropy(a, L.tensor(target), reduction="sum"),
        "ce_smooth": lambda L, a: L.nn.functional.cross_entropy(a, L.tensor(target), label_smoothing=0.1),
        "ce_probs": lambda L, a: L.nn.functional.cross_entropy(a, L.tensor(probs)),
        "nll_none": lambda L, a: L.nn.functional.nll_loss(
            a.log_softmax(1), L.tensor(target), reduction="none"
        ),
        "bce": lambda L, a: L.nn.BCEWithLogitsLoss()(a, L.tensor(probs)),
        "bce_pos_weight": lambda L, a: L.nn.functional.binary_cross_entropy_with_logits(
            a, L.tensor(probs), pos_weight=L.tensor([1.0, 2.0, 3.0, 0.5])
        ),
    }
    res = []
    for lib in (fg, torch):
        a = lib.tensor(x, requires_grad=True)
        out = fns[loss](lib, a)
        (out.sum() if out.ndim else out).backward()
        res.append((out, a.grad))
    assert_close(res[0][0], res[1][0], scale=5)
    assert_close(res[0][1], res[1][1], scale=5)


def test_module_bookkeeping_and_state_dict() -> None:
    class Net(fg.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = fg.nn.Sequential(fg.nn.Linear(3, 4), fg.nn.ReLU())
            self.head = fg.nn.Linear(4, 1)
            self.register_buffer("steps", fg.zeros(1))

        def forward(self, x: Any) -> Any:
            return self.head(self.body(x))

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "head.weight", "head.bias"]
    sd = net.state_dict()
    assert list(sd) == ["steps", *names]  # a module's own entries first, as torch orders them
    assert not sd["head.weight"].requires_grad
    other = Net()
    other.load_state_dict(sd)
    x = fg.randn(2, 3)
    assert np.allclose(other(x).detach().numpy(), net(x).detach().numpy())
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "steps"'):
        other.load_state_dict({k: v for k, v in sd.items() if k != "steps"})
    net.eval()
    assert not net.body[1].training
    net(x).sum().backward()
    assert net.head.weight.grad is not None
    net.zero_grad()
    assert net.head.weight.grad is None
    assert "Linear(in_features=3, out_features=4, bias=True)" in repr(net)
    assert repr(fg.nn.Parameter(fg.ones(2))) == repr(torch.nn.Parameter(torch.ones(2)))


def test_save_load_device_and_to(tmp_path: Any) -> None:
    model = fg.nn.Linear(3, 2).to(fg.device("cpu"))
    path = tmp_path / "model.pt"
    fg.save(model.state_dict(), path)
    other = fg.nn.Linear(3, 2)
    other.load_state_dict(fg.load(path))
    assert bool((other.weight == model.weight).all()) and not fg.cuda.is_available()
    assert model.to(fg.float64).weight.dtype is fg.float64
    with pytest.raises(RuntimeError, match="CPU only"):
        fg.device("cuda")
