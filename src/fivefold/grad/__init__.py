"""fivefold.grad: NumPy reverse-mode autodiff with PyTorch's autograd semantics.

Mirrors torch's top-level names for what it offers, so a torch snippet runs after
changing only the import::

    import fivefold.grad as torch
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # tensor([2., 4.])
"""

from __future__ import annotations

from fivefold.grad import _dtype, autograd, nn, optim
from fivefold.grad import functions as _functions
from fivefold.grad._dtype import (
    bool_ as bool,
)
from fivefold.grad._dtype import (
    dtype,
    float16,
    float32,
    float64,
    get_default_dtype,
    int8,
    int16,
    int32,
    int64,
    set_default_dtype,
    uint8,
)
from fivefold.grad.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    is_tensor,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from fivefold.grad.functions.elementwise import add, div, maximum, minimum, mul, pow, sub, where
from fivefold.grad.functions.index import gather, index_select, masked_fill, one_hot, tril, triu
from fivefold.grad.functions.linalg import bmm, dot, matmul, mm
from fivefold.grad.functions.nnops import log_softmax, softmax
from fivefold.grad.functions.reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    logsumexp,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from fivefold.grad.functions.shape import (
    broadcast_to,
    cat,
    chunk,
    flatten,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unbind,
    unsqueeze,
)
from fivefold.grad.functions.unary import (
    abs,
    clamp,
    cos,
    erf,
    exp,
    log,
    log1p,
    neg,
    reciprocal,
    relu,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    tanh,
)
from fivefold.grad.functions.unary import clamp as clip
from fivefold.grad.mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from fivefold.grad.serialization import cuda, device, load, save
from fivefold.grad.tensor import Size, Tensor

float = float32
double = float64
long = int64
int = int32
half = float16
concat = cat
concatenate = cat
_ = (_dtype, _functions)


def numel(t: Tensor) -> object:
    return t.numel()


__all__ = [
    "Size",
    "Tensor",
    "abs",
    "add",
    "all",
    "amax",
    "amin",
    "any",
    "arange",
    "argmax",
    "argmin",
    "as_tensor",
    "autograd",
    "bmm",
    "bool",
    "broadcast_to",
    "cat",
    "chunk",
    "clamp",
    "clip",
    "concat",
    "concatenate",
    "cos",
    "cuda",
    "device",
    "div",
    "dot",
    "double",
    "dtype",
    "empty",
    "empty_like",
    "enable_grad",
    "erf",
    "exp",
    "eye",
    "flatten",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "gather",
    "get_default_dtype",
    "half",
    "index_select",
    "inference_mode",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_grad_enabled",
    "is_tensor",
    "linspace",
    "load",
    "log",
    "log1p",
    "log_softmax",
    "logsumexp",
    "long",
    "manual_seed",
    "masked_fill",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "neg",
    "nn",
    "no_grad",
    "numel",
    "one_hot",
    "ones",
    "ones_like",
    "optim",
    "permute",
    "pow",
    "prod",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "reciprocal",
    "relu",
    "reshape",
    "rsqrt",
    "save",
    "set_default_dtype",
    "set_grad_enabled",
    "sigmoid",
    "sign",
    "sin",
    "softmax",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "tanh",
    "tensor",
    "transpose",
    "tril",
    "triu",
    "uint8",
    "unbind",
    "unsqueeze",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
