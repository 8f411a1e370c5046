"""The fused LoRA linear op (tuners/lora/fused.py) against the unfused path and autograd's own checks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from swiftune import Swift
from swiftune.tuners.lora.fused import is_plain_linear, lora_linear
from swiftune.tuners.lora.layer import LoraLinear


def _inputs(bias: bool, shared: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)

    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    x = t(2, 3, 5)
    h = x if shared else t(2, 3, 5)
    return x, h, t(4, 5), t(4) if bias else None, t(2, 5), t(4, 2)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_gradcheck_and_double_backward(bias: bool, shared: bool) -> None:
    x, h, w, b, la, lb = _inputs(bias, shared)
    named = {"x": x, "h": h, "w": w, "bias": b, "a": la, "b": lb}
    keys = [k for k, v in named.items() if v is not None and not (shared and k == "h")]

    def fn(*values: torch.Tensor) -> torch.Tensor:
        v = dict(zip(keys, values))
        return lora_linear(v["x"], v["x"] if shared else v["h"], v["w"], v.get("bias"), v["a"], v["b"], 1.5)

    inputs = tuple(named[k] for k in keys)
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_matches_unfused_formula_and_no_grad_path() -> None:
    x, h, w, b, la, lb = _inputs(True, False)
    expected = nn.functional.linear(x, w, b) + nn.functional.linear(nn.functional.linear(h, la), lb) * 1.5
    torch.testing.assert_close(lora_linear(x, h, w, b, la, lb, 1.5), expected)
    with torch.no_grad():
        torch.testing.assert_close(lora_linear(x, h, w, b, la, lb, 1.5), expected.detach())


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 24)
        self.down = nn.Linear(24, 16, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


def _pair(dropout: float = 0.0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    fused = Swift.prepare(Net(), {"tuner": "lora", "r": 4, "lora_alpha": 8, "lora_dropout": dropout})
    with torch.no_grad():
        for n, p in fused.named_parameters():
            if "lora_B" in n:
                p.normal_()
    unfused = copy.deepcopy(fused)
    for m in unfused.modules():
        if isinstance(m, LoraLinear):
            m.base_layer.register_forward_pre_hook(lambda mod, args: None)
    return fused, unfused


def _grads(model: nn.Module, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    out = model(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out, x.grad, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_path_taken_and_equal_to_unfused(dropout: float) -> None:
    fused, unfused = _pair(dropout)
    for m in (fused, unfused):
        m.train()
        m.model.up.base_layer.weight.requires_grad_(True)  # an unfrozen base weight and bias too
        m.model.up.base_layer.bias.requires_grad_(True)
    x = torch.randn(3, 7, 16)
    out_f, gx_f, g_f = _grads(fused, x)
    out_u, gx_u, g_u = _grads(unfused, x)
    assert type(fused.model.down(torch.randn(2, 24, requires_grad=True)).grad_fn).__name__ == "_FusedLoraLinearBackward"
    assert type(out_u.grad_fn).__name__ != "_FusedLoraLinearBackward"
    torch.testing.assert_close(out_f, out_u, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gx_f, gx_u, atol=1e-6, rtol=1e-5)
    assert set(g_f) == set(g_u) and len(g_f) == 6  # 2 x (lora_A, lora_B) + up's weight and bias
    for n in g_f:
        torch.testing.assert_close(g_f[n], g_u[n], atol=1e-6, rtol=1e-5, msg=n)


def test_hooks_and_odd_inputs_take_the_module_path() -> None:
    fused, _ = _pair()
    layer = fused.model.up
    seen: list[int] = []
    handle = layer.base_layer.register_forward_hook(lambda mod, args, out: seen.append(1))
    assert not is_plain_linear(layer.base_layer)
    layer(torch.randn(2, 16))
    assert seen == [1]  # the hook on the base layer ran
    handle.remove()
    assert is_plain_linear(layer.base_layer)
    # A non-contiguous input: F.linear itself runs another kernel there, and so do we.
    x = torch.randn(16, 5, 3).permute(2, 1, 0)
    assert type(layer(x).grad_fn).__name__ != "_FusedLoraLinearBackward"
    torch.testing.assert_close(layer(x), layer(x.contiguous()), atol=1e-6, rtol=1e-5)


def test_torch_func_grad_takes_the_unfused_formula() -> None:
    fused, unfused = _pair()
    x = torch.randn(4, 16)
    params = {n: p.detach() for n, p in fused.named_parameters() if p.requires_grad}

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(fused, p, (x,)).pow(2).sum()

    grads = torch.func.grad(loss)(params)
    unfused(x).pow(2).sum().backward()  # the unfused model, with the ordinary backward
    checked = 0
    for n, p in unfused.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(grads[n], p.grad, atol=1e-6, rtol=1e-5, msg=n)
            checked += 1
    assert checked == 4


def _lm_pair() -> tuple[nn.Module, nn.Module]:
    """The fused and the unfused (hooked) path on one tiny Llama, LoRA B non-zero."""
    from swiftune.testing.models import tiny_llama

    torch.manual_seed(0)
    fused = Swift.prepare(tiny_llama().build(), {"tuner": "lora", "r": 4, "lora_alpha": 8})
    with torch.no_grad():
        for n, p in fused.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    unfused = copy.deepcopy(fused)
    for m in unfused.modules():
        if isinstance(m, LoraLinear):
            m.base_layer.register_forward_pre_hook(lambda mod, args: None)
    return fused, unfused


def test_bf16_autocast_matches_autocast_linear() -> None:
    fused, unfused = _lm_pair()
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    results = []
    for model in (fused, unfused):
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.logits.float(), out.loss.item(), grads))
    layer = next(m for m in fused.modules() if isinstance(m, LoraLinear))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(torch.randn(3, layer.in_features, requires_grad=True))
    assert y.dtype == torch.bfloat16
    assert type(y.grad_fn).__name__ != "_FusedLoraLinearBackward"  # autocast runs the plain path
    (z_f, l_f, g_f), (z_u, l_u, g_u) = results
    assert abs(l_f - l_u) < 2e-2
    torch.testing.assert_close(z_f, z_u, atol=5e-2, rtol=5e-2)
    assert set(g_f) == set(g_u) and all(n.count("lora_") for n in g_f) and len(g_f) > 4
    for n in g_f:  # fp32 gradients of the fp32 LoRA weights, equal up to bf16 rounding
        assert g_f[n].dtype == torch.float32
        torch.testing.assert_close(g_f[n], g_u[n], atol=2e-2, rtol=5e-2, msg=n)
