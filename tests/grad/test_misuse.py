"""Table-driven misuse: each snippet raises the same exception type and message on both libraries."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from tests.grad.conftest import fg, torch

CASES = {
    "implicit_grad_non_scalar": "x = L.ones(3, requires_grad=True); (x * 2).backward()",
    "second_backward": "x = L.ones(3, requires_grad=True); y = (x * x).sum(); y.backward(); y.backward()",
    "second_backward_scalar_mul": "x = L.ones(3, requires_grad=True); y = (x * 2).sum(); y.backward(); "
    "y.backward()",
    "second_backward_exp": "x = L.ones(3, requires_grad=True); y = x.exp().sum(); y.backward(); y.backward()",
    "autograd_grad_twice": "x = L.ones(3, requires_grad=True); y = (x * x).sum(); L.autograd.grad(y, x); "
    "L.autograd.grad(y, x)",
    "inplace_leaf": "x = L.ones(3, requires_grad=True); x.add_(1)",
    "inplace_leaf_iadd": "x = L.ones(3, requires_grad=True); x += 1",
    "inplace_leaf_zero": "x = L.ones(3, requires_grad=True); x.zero_()",
    "inplace_leaf_mul": "x = L.ones(3, requires_grad=True); x.mul_(2)",
    "setitem_leaf": "x = L.ones(3, requires_grad=True); x[0] = 1",
    "inplace_view_of_leaf": "x = L.ones(3, requires_grad=True); x[:2].add_(1)",
    "inplace_view_reshape_leaf": "x = L.ones(3, requires_grad=True); x.view(3).mul_(2)",
    "backward_no_grad": "x = L.ones(3); x.sum().backward()",
    "backward_detached": "x = L.ones(3, requires_grad=True); x.sum().detach().backward()",
    "backward_under_no_grad": "x = L.ones(3, requires_grad=True)\nwith L.no_grad():\n    y = (x * 2).sum()\n"
    "y.backward()",
    "grad_shape_mismatch": "x = L.ones(3, requires_grad=True); (x * 2).backward(L.ones(2))",
    "grad_outputs_shape_mismatch": "x = L.ones(3, requires_grad=True); "
    "L.autograd.grad(x.sum(), x, L.ones(2))",
    "numpy_requires_grad": "x = L.ones(3, requires_grad=True); x.numpy()",
    "numpy_nonleaf": "x = L.ones(3, requires_grad=True); (x * 2).numpy()",
    "requires_grad_int_ctor": "L.ones(3, dtype=L.long, requires_grad=True)",
    "requires_grad_int_tensor": "L.tensor([1, 2], requires_grad=True)",
    "requires_grad_int_method": "L.ones(3, dtype=L.long).requires_grad_()",
    "requires_grad_nonleaf_false": "x = L.ones(3, requires_grad=True); y = x * 2; y.requires_grad = False",
    "saved_tensor_modified": "x = L.ones(3, requires_grad=True); y = x * 2; z = (y * y).sum(); y.add_(1); "
    "z.backward()",
    "saved_output_modified": "x = L.ones(3, requires_grad=True); y = x.exp(); z = y.sum(); y.add_(1); "
    "z.backward()",
    "saved_leaf_modified_no_grad": "x = L.ones(3, requires_grad=True); z = (x * x).sum()\n"
    "with L.no_grad():\n    x.add_(1)\nz.backward()",
    "saved_constant_modified": "x = L.ones(3, requires_grad=True); c = L.ones(3); z = (x * c).sum(); "
    "c.add_(1); "
    "z.backward()",
    "saved_double_modified": "x = L.ones(2, 3, dtype=L.float64, requires_grad=True); y = x.tanh(); "
    "s = y.sum(); "
    "y.mul_(2); s.backward()",
    "unused_input": "x = L.ones(3, requires_grad=True); y = L.ones(3, requires_grad=True); "
    "L.autograd.grad((x * 2).sum(), [x, y])",
    "grad_input_no_grad": "x = L.ones(3, requires_grad=True); y = L.ones(3); L.autograd.grad(x.sum(), y)",
    "broadcast_add": "L.ones(3) + L.ones(2)",
    "broadcast_mul_2d": "L.ones(2, 3) * L.ones(4, 1, 2)",
    "broadcast_sub": "L.ones(4, 3) - L.ones(2, 1)",
    "matmul_mm": "L.ones(3, 2) @ L.ones(3, 2)",
    "matmul_mv": "L.ones(2, 3) @ L.ones(2)",
    "matmul_dot": "L.ones(3) @ L.ones(2)",
    "matmul_bmm": "L.ones(2, 3, 4) @ L.ones(2, 3, 4)",
    "matmul_3d_2d": "L.ones(2, 2, 3) @ L.ones(2, 4)",
    "matmul_3d_1d": "L.ones(2, 3, 4) @ L.ones(3)",
    "matmul_1d_2d": "L.ones(3) @ L.ones(1, 3)",
    "matmul_0d": "L.ones(3) @ L.tensor(2.0)",
    "linear_shapes": "L.nn.functional.linear(L.ones(4, 3), L.ones(5, 2))",
    "item_many": "L.ones(3).item()",
    "bool_many": "bool(L.ones(3))",
    "reshape_invalid": "L.ones(2, 3).reshape(4)",
    "view_invalid": "L.ones(2, 3).view(5)",
    "expand_invalid": "L.ones(2).expand(3)",
    "dim_out_of_range": "L.ones(2, 3).sum(2)",
    "dim_out_of_range_neg": "L.ones(2, 3).softmax(-3)",
    "cat_mismatch": "L.cat([L.ones(2, 3), L.ones(3, 2)])",
    "index_out_of_range": "L.ones(3)[5]",
    "backward_empty_inputs": "x = L.ones(3, requires_grad=True); x.sum().backward(inputs=[])",
    "mean_of_int": "L.tensor([1, 2]).mean()",
    "int_neg_pow": "L.tensor([1, 2]) ** -1",
    "inplace_int_float": "x = L.ones(3, dtype=L.long); x += 1.5",
    "t_3d": "L.ones(2, 3, 4).t()",
    "retain_grad_no_grad": "L.ones(3).retain_grad()",
    "hook_no_grad": "L.ones(3).register_hook(lambda g: g)",
    "embedding_oob": "L.nn.functional.embedding(L.tensor([5]), L.ones(3, 2))",
    "clamp_none": "L.ones(3).clamp()",
    "cross_entropy_batch": "L.nn.functional.cross_entropy(L.ones(3, 4), L.tensor([0, 1]))",
    "layer_norm_shape": "L.nn.functional.layer_norm(L.ones(2, 3), (4,))",
    "dropout_p": "L.nn.functional.dropout(L.ones(3), 1.5)",
    "sgd_lr": "L.optim.SGD([L.ones(2, requires_grad=True)], lr=-1)",
    "adam_beta": "L.optim.Adam([L.ones(2, requires_grad=True)], betas=(1.0, 0.9))",
    "optim_nonleaf": "x = L.ones(2, requires_grad=True); L.optim.SGD([x * 2], lr=0.1)",
    "optim_empty": "L.optim.SGD([], lr=0.1)",
    "mse_broadcast": "L.nn.functional.mse_loss(L.ones(3), L.ones(2))",
    "one_hot_float": "L.nn.functional.one_hot(L.ones(3))",
    "stack_mismatch": "L.stack([L.ones(2), L.ones(3)])",
    "split_sizes": "L.ones(5).split([2, 2])",
    "permute_len": "L.ones(2, 3).permute(0)",
    "masked_fill_float_mask": "L.ones(3).masked_fill(L.ones(3), 0.0)",
    "nesterov": "L.optim.SGD([L.ones(2, requires_grad=True)], lr=0.1, nesterov=True)",
}


def _outcome(lib: Any, code: str) -> tuple[str, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(code, {"L": lib})
    except Exception as exc:  # the exception itself is what is compared
        return type(exc).__name__, str(exc)
    return "no error", ""


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_error_as_torch(name: str) -> None:
    code = CASES[name]
    expected = _outcome(torch, code)
    assert expected[0] != "no error", f"torch accepts {name!r}; the table is wrong"
    got = _outcome(fg, code)
    assert got == expected


def test_nonleaf_grad_access_warns_like_torch() -> None:
    messages = []
    for lib in (torch, fg):
        x = lib.ones(3, requires_grad=True)
        y = x * 2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert y.grad is None
        assert len(caught) == 1 and caught[0].category is UserWarning
        messages.append(str(caught[0].message).split(" (Triggered internally")[0])
    assert messages[0] == messages[1]


def test_retained_nonleaf_grad_does_not_warn() -> None:
    x = fg.ones(3, requires_grad=True)
    y = x * 2
    y.retain_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (y * y).sum().backward()
        assert y.grad.tolist() == [4.0, 4.0, 4.0]
