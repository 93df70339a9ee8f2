"""A diffusion transformer over spacetime patches (DiT with adaLN-Zero, Peebles & Xie 2023).

Conditioning: the timestep (and, for text, the pooled prompt embedding) drives adaLN-Zero
modulation; text tokens enter through cross-attention; a known-frames channel group (clean
latents where known + a per-frame mask) lets one model do text-to-video, image-to-video,
extension and interpolation. Self-attention is full 3D or, as an option, split into spatial and
temporal attention in alternating blocks (Latte's interleaved variant: same parameters).

With ``cond="class"``, ``pos="sincos"``, ``learn_sigma=True`` and no known-frames channels the
model has exactly the parameters of facebookresearch/DiT's ``models.py`` (see ``PAPER_CONFIGS``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from fivefold._common.errors import UsageError
from fivefold.video.patches import Patch, patchify, unpatchify
from fivefold.video.rope import rope_rotation, rotate_pairs


@dataclass(frozen=True)
class DiTConfig:
    hidden: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    patch: Patch = (1, 2, 2)
    latent_channels: int = 4
    known_frames: bool = True  # add C known-latent channels + 1 mask channel to the input
    learn_sigma: bool = False
    cond: Literal["text", "class"] = "text"
    num_classes: int = 1000
    class_dropout: float = 0.1  # > 0 adds the null class row to the label table, as in DiT
    text_dim: int = 384
    pos: Literal["rope", "sincos"] = "rope"
    input_size: tuple[int, int, int] = (1, 32, 32)  # latent (T,H,W); only the sincos table needs it
    attention: Literal["full", "split"] = "full"
    grad_checkpoint: bool = False
    # RoPE height/width position per token; below 1 after re-patching to finer patches (see repatch).
    # A later field: saved only when not 1, so earlier checkpoints' configs still match.
    rope_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise UsageError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.cond not in ("text", "class"):
            raise UsageError(f"cond must be 'text' or 'class', got {self.cond!r}")
        if self.attention not in ("full", "split"):
            raise UsageError(f"attention must be 'full' or 'split', got {self.attention!r}")

    @property
    def in_channels(self) -> int:
        c = self.latent_channels
        return 2 * c + 1 if self.known_frames else c

    @property
    def out_channels(self) -> int:
        return 2 * self.latent_channels if self.learn_sigma else self.latent_channels

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["rope_scale"] == 1.0:
            del d["rope_scale"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiTConfig:
        data = dict(data)
        data["patch"] = tuple(data["patch"])
        data["input_size"] = tuple(data["input_size"])
        # run-time switches are not part of a model's identity
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The fields a checkpoint must match (run-time switches excluded)."""
        d = self.to_dict()
        d.pop("grad_checkpoint")
        return d


SIZES: dict[str, tuple[int, int, int]] = {  # depth, hidden, heads (DiT paper, Table 1)
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (28, 1152, 16),
}


def paper_config(name: str, **overrides: Any) -> DiTConfig:
    """``DiT-XL/2`` etc.: the paper's class-conditional 256px setting (32x32x4 latents)."""
    key = name.removeprefix("DiT-")
    try:
        size, patch = key.split("/")
        depth, hidden, heads = SIZES[size]
        p = int(patch)
    except (ValueError, KeyError):
        names = ", ".join(f"DiT-{s}/{p}" for s in SIZES for p in (2, 4, 8))
        raise UsageError(f"unknown config {name!r}; choose from {names}") from None
    base = DiTConfig(
        hidden=hidden,
        depth=depth,
        heads=heads,
        patch=(1, p, p),
        latent_channels=4,
        known_frames=False,
        learn_sigma=True,
        cond="class",
        num_classes=1000,
        class_dropout=0.1,
        pos="sincos",
        input_size=(1, 32, 32),
    )
    return replace(base, **overrides)


PAPER_NAMES = [f"DiT-{s}/{p}" for s in SIZES for p in (2, 4, 8)]


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift.unsqueeze(1), x, 1 + scale.unsqueeze(1))


def gated(x: Tensor, gate: Tensor, branch: Tensor) -> Tensor:
    """x + gate * branch in one pass (adaLN-Zero's gated residual)."""
    return torch.addcmul(x, gate.unsqueeze(1), branch)


_GELU_K = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


class _GeluTanhCPU(torch.autograd.Function):
    """DiT's tanh-approximated GELU as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).

    The same function as ``F.gelu(approximate="tanh")`` (0.5 (1 + tanh u) = sigmoid(2u)), but
    ATen's CPU kernel pays for an exact vectorised tanh per element in both directions; these
    few fused passes with one sigmoid are ~1.5x cheaper forward + backward on one thread."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        s = torch.addcmul(x.new_full((), _GELU_K), x, x, value=_GELU_K * _GELU_A)
        s.mul_(x).sigmoid_()
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        x, s = ctx.saved_tensors
        # d/dx x s(2u) = s + x s (1 - s) 2u' = s (1 + w (1 - s)) with w = x 2u'
        w = torch.addcmul(x.new_full((), _GELU_K), x, x, value=3 * _GELU_K * _GELU_A).mul_(x)
        w.addcmul_(w, s, value=-1.0)
        return torch.addcmul(s, w, s).mul_(grad)


def gelu_tanh(x: Tensor) -> Tensor:
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        out: Tensor = _GeluTanhCPU.apply(x)  # type: ignore[no-untyped-call]
        return out
    return F.gelu(x, approximate="tanh")  # fused kernels elsewhere


def timestep_embedding(t: Tensor, dim: int = 256, max_period: float = 10_000.0) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        out: Tensor = self.mlp(timestep_embedding(t, self.freq_dim))
        return out


class SelfAttention(nn.Module):
    """Fused QKV projection, RoPE on q and k, PyTorch SDPA; full or split (spatial/temporal)."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, rope: Tensor | None, grid: tuple[int, int, int], mode: str) -> Tensor:
        b, n, d = x.shape
        a, e = self.heads, d // self.heads
        qkv = self.qkv(x)
        # split along channels (views; backward writes one (b, n, 3d) gradient with no stack)
        v = qkv[..., 2 * d :].view(b, n, a, e).transpose(1, 2)
        if rope is None:
            q, k = (z.view(b, n, a, e).transpose(1, 2) for z in qkv[..., : 2 * d].split(d, dim=-1))
        else:  # q and k rotated together: one complex multiply
            qk = rotate_pairs(qkv[..., : 2 * d].view(b, n, 2, a, e), rope[:, None, None])
            q, k = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2)
        t = grid[0]
        if mode == "spatial":
            q, k, v = (rearrange(z, "b a (t s) e -> (b t) a s e", t=t) for z in (q, k, v))
        elif mode == "temporal":
            q, k, v = (rearrange(z, "b a (t s) e -> (b s) a t e", t=t) for z in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        if mode == "spatial":
            out = rearrange(out, "(b t) a s e -> b a (t s) e", b=b)
        elif mode == "temporal":
            out = rearrange(out, "(b s) a t e -> b a (t s) e", b=b)
        out = out.transpose(1, 2).reshape(b, n, d)
        result: Tensor = self.proj(out)
        return result


class CrossAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, ctx: Tensor, ctx_mask: Tensor | None) -> Tensor:
        b, n, d = x.shape
        a, e = self.heads, d // self.heads
        q = self.q(self.norm(x)).view(b, n, a, e).transpose(1, 2)
        k, v = (z.view(b, -1, a, e).transpose(1, 2) for z in self.kv(ctx).split(d, dim=-1))
        mask = None if ctx_mask is None else ctx_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        result: Tensor = self.proj(out.transpose(1, 2).reshape(b, n, d))
        return result


class MLP(nn.Module):
    def __init__(self, hidden: int, ratio: float) -> None:
        super().__init__()
        inner = int(hidden * ratio)
        self.fc1 = nn.Linear(hidden, inner)
        self.fc2 = nn.Linear(inner, hidden)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(gelu_tanh(self.fc1(x)))
        return out


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig, mode: str) -> None:
        super().__init__()
        d = cfg.hidden
        self.mode = mode
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(d, cfg.heads)
        self.cross = CrossAttention(d, cfg.heads) if cfg.cond == "text" else None
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(d, cfg.mlp_ratio)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        rope: Tensor | None,
        grid: tuple[int, int, int],
        ctx: Tensor | None,
        ctx_mask: Tensor | None,
    ) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = gated(x, gate1, self.attn(modulate(self.norm1(x), shift1, scale1), rope, grid, self.mode))
        if self.cross is not None and ctx is not None:
            x = x + self.cross(x, ctx, ctx_mask)
        return gated(x, gate2, self.mlp(modulate(self.norm2(x), shift2, scale2)))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        out: Tensor = self.linear(modulate(self.norm_final(x), shift, scale))
        return out


def sincos_2d(hidden: int, h: int, w: int) -> Tensor:
    """DiT's fixed 2D sin-cos table (half the channels per axis)."""

    def axis(dim: int, pos: Tensor) -> Tensor:
        omega = 1.0 / 10_000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
        out = pos.reshape(-1, 1).double() * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    gh, gw = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([axis(hidden // 2, gw), axis(hidden // 2, gh)], dim=1).float()


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        pt, ph, pw = cfg.patch
        self.x_embedder = nn.Linear(cfg.in_channels * pt * ph * pw, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder: nn.Module
        if cfg.cond == "class":
            self.y_embedder = nn.Embedding(cfg.num_classes + int(cfg.class_dropout > 0), d)
        else:
            self.y_embedder = nn.Linear(cfg.text_dim, d)  # the pooled prompt, added to the timestep
            self.ctx_embedder = nn.Sequential(
                nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)
            )
        if cfg.pos == "sincos":
            t, h, w = cfg.input_size
            n = (t // pt) * (h // ph) * (w // pw)
            # a frozen Parameter, as in DiT (so parameter counts match the paper's code)
            self.pos_embed = nn.Parameter(torch.zeros(1, n, d), requires_grad=False)
        modes = ["full"] * cfg.depth
        if cfg.attention == "split":
            modes = ["spatial" if i % 2 == 0 else "temporal" for i in range(cfg.depth)]
        self.blocks = nn.ModuleList([DiTBlock(cfg, m) for m in modes])
        self.final_layer = FinalLayer(d, pt * ph * pw * cfg.out_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(basic)
        if self.cfg.pos == "sincos" and self.pos_embed.device.type != "meta":
            _, h, w = self.cfg.input_size
            _, ph, pw = self.cfg.patch
            table = sincos_2d(self.cfg.hidden, h // ph, w // pw)
            self.pos_embed.data.copy_(table.repeat(self.pos_embed.shape[1] // table.shape[0], 1)[None])
        if isinstance(self.y_embedder, nn.Embedding):
            nn.init.normal_(self.y_embedder.weight, std=0.02)
        for layer in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            assert isinstance(layer, nn.Linear)
            nn.init.normal_(layer.weight, std=0.02)
        # adaLN-Zero: every residual branch and the output start at zero, so each block is the
        # identity at initialisation and the model first predicts 0.
        zero: list[nn.Module] = [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for block in self.blocks:
            assert isinstance(block, DiTBlock)
            zero.append(block.adaLN_modulation[-1])
            if block.cross is not None:
                zero.append(block.cross.proj)
        for layer in zero:
            assert isinstance(layer, nn.Linear)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        y: Tensor,
        *,
        y_mask: Tensor | None = None,
        y_pooled: Tensor | None = None,
        known: Tensor | None = None,
        known_mask: Tensor | None = None,
    ) -> Tensor:
        """x: (B,C,T,H,W) noisy latents; t: (B,) in the sampler's units (scaled to 0..1000);
        y: class labels (B,) or text tokens (B,L,text_dim) with y_mask (B,L) bool and y_pooled
        (B,text_dim); known: (B,C,T,H,W) clean latents, known_mask: (B,T) bool latent frames."""
        cfg = self.cfg
        b, _, tt, hh, ww = x.shape
        if cfg.known_frames:
            if known_mask is None:
                m = x.new_zeros(b, 1, tt, hh, ww)
                k = torch.zeros_like(x)
            else:
                m = known_mask.to(x.dtype)[:, None, :, None, None].expand(b, 1, tt, hh, ww)
                k = torch.zeros_like(x) if known is None else known * m
            x = torch.cat([x, k, m], dim=1)
        tokens, grid = patchify(x, cfg.patch)
        h = self.x_embedder(tokens)
        rope = None
        if cfg.pos == "sincos":
            if h.shape[1] != self.pos_embed.shape[1]:
                raise UsageError(
                    f"a sincos DiT is fixed to latent size {cfg.input_size}; "
                    f"got {(tt, hh, ww)} (use pos='rope')"
                )
            h = h + self.pos_embed
        else:
            rope = rope_rotation(grid, cfg.hidden // cfg.heads, device=x.device, spatial_scale=cfg.rope_scale)
        c = self.t_embedder(t)
        ctx = None
        if cfg.cond == "class":
            c = c + self.y_embedder(y)
        else:
            if y_pooled is None:
                y_pooled = y.mean(dim=1)
            c = c + self.y_embedder(y_pooled)
            ctx = self.ctx_embedder(y)
        for block in self.blocks:
            if cfg.grad_checkpoint and self.training:
                h = checkpoint(block, h, c, rope, grid, ctx, y_mask, use_reentrant=False)
            else:
                h = block(h, c, rope, grid, ctx, y_mask)
        out = self.final_layer(h, c)
        return unpatchify(out, grid, cfg.patch, cfg.out_channels)


def count_params(cfg: DiTConfig) -> int:
    """Parameters of a config, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = DiT(cfg)
    return sum(p.numel() for p in model.parameters())


def deepen(state: dict[str, Tensor], old_depth: int, model: DiT) -> dict[str, Tensor]:
    """A state dict for ``model`` made from a shallower model's: the old blocks spread evenly over
    the new depth, in order, and the blocks between keep ``model``'s own adaLN-Zero initialisation,
    which makes each the identity. The deeper model therefore starts computing exactly what the
    shallower one did, and training goes on with more capacity instead of from scratch."""
    new_depth = model.cfg.depth
    if model.cfg.attention != "full":
        raise UsageError("only full-attention models can be deepened (split attention alternates by depth)")
    if not 0 < old_depth <= new_depth:
        raise UsageError(f"cannot deepen a depth-{old_depth} model to depth {new_depth}")
    slots = {round(i * new_depth / old_depth): i for i in range(old_depth)}
    grown: dict[str, Tensor] = {}
    for key, fresh in model.state_dict().items():
        if not key.startswith("blocks."):
            grown[key] = state[key]
            continue
        _, index, rest = key.split(".", 2)
        old = slots.get(int(index))
        grown[key] = fresh.detach().clone() if old is None else state[f"blocks.{old}.{rest}"]
    return grown


def repatch_factor(old: Patch, new: Patch) -> int:
    """How many times finer ``new`` is than ``old`` in height and width (the same for both; time
    unchanged), or a UsageError naming what cannot be re-patched."""
    (ot, oh, ow), (nt, nh, nw) = old, new
    if ot != nt or oh % nh or ow % nw or oh // nh != ow // nw:
        raise UsageError(
            f"cannot re-patch {ot}x{oh}x{ow} to {nt}x{nh}x{nw}: the new patch must split the old one's "
            "height and width by the same factor and keep its length"
        )
    return oh // nh


def repatch(state: dict[str, Tensor], old_patch: Patch, model: DiT) -> dict[str, Tensor]:
    """A state dict for ``model`` made from one of a model with coarser patches (as :func:`deepen`
    grows depth): the blocks are kept; a fine token embeds as a coarse patch filled with its value
    (the coarse embedding's weights summed over the positions it covers) and predicts the mean of
    the coarse outputs over them. With ``rope_scale`` divided by the factor, a token's position
    still names the same place, so the model starts close to the coarse one (training loss 0.32
    against 1.25 without the position scale, 0.11 for the source model, in docs/video.md) and
    training then teaches it the detail inside a coarse patch."""
    cfg = model.cfg
    r = repatch_factor(old_patch, cfg.patch)
    pt, ph, pw = cfg.patch
    d = cfg.hidden
    embed = state["x_embedder.weight"].view(d, cfg.in_channels, pt, r, ph, r, pw)
    out_w = state["final_layer.linear.weight"].view(cfg.out_channels, pt, r, ph, r, pw, d)
    out_b = state["final_layer.linear.bias"].view(cfg.out_channels, pt, r, ph, r, pw)
    new = dict(state)
    new["x_embedder.weight"] = embed.sum(dim=(3, 5)).reshape(d, -1)
    new["final_layer.linear.weight"] = out_w.mean(dim=(2, 4)).reshape(-1, d)
    new["final_layer.linear.bias"] = out_b.mean(dim=(2, 4)).reshape(-1)
    return new
