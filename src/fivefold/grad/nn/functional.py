"""``fivefold.grad.nn.functional``: torch.nn.functional's names for the ops offered."""

from __future__ import annotations

from fivefold.grad.functions.conv import avg_pool2d, conv1d, conv2d, max_pool2d
from fivefold.grad.functions.index import one_hot
from fivefold.grad.functions.linalg import linear
from fivefold.grad.functions.nnops import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    dropout,
    layer_norm,
    log_softmax,
    mse_loss,
    nll_loss,
    scaled_dot_product_attention,
    softmax,
)
from fivefold.grad.functions.nnops import (
    embedding as _embedding,
)
from fivefold.grad.functions.unary import gelu, relu, sigmoid, softplus, tanh
from fivefold.grad.tensor import Tensor


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    return _embedding(input, weight, padding_idx)


__all__ = [
    "avg_pool2d",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]
