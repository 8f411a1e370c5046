"""``lora_linear``: ``x W^T + bias + scale * (h A^T) B^T`` as one autograd node.

Why fused: with separate ops a training step pays, per LoRA layer, for a second (tokens, out)
output holding the sum, a separate (tokens, in) gradient of the LoRA branch that autograd then
adds to the base layer's, and a graph node per op. Here the LoRA product is accumulated into the
base output in place (a GEMM with beta=1), and in backward the LoRA part of the input gradient is
accumulated into the base part the same way. ``h`` is the LoRA branch's input: ``x`` itself, or
``dropout(x)``. The backward is written with differentiable ops, so double backward works too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class _FusedLoraLinear(torch.autograd.Function):
    # Old-style (ctx in forward) on purpose: the setup_context style costs about 45 us more per
    # call in Python, which small layers and short sequences feel. torch.func transforms, which
    # need setup_context, take the unfused path instead (see lora_linear).
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        h: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        out, t = _compute(x, h, weight, bias, lora_a, lora_b, scale)
        ctx.scale = scale
        ctx.shared = h is x
        # x is needed only for the base weight's gradient (usually frozen): don't keep it otherwise.
        ctx.save_for_backward(x if ctx.needs_input_grad[2] else None, h, weight, lora_a, lora_b, t)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        x, h, weight, lora_a, lora_b, t = ctx.saved_tensors
        need_x, need_h, need_w, need_bias, need_a, need_b, _ = ctx.needs_input_grad
        g = grad_out.reshape(-1, grad_out.shape[-1])
        h2 = h.reshape(-1, h.shape[-1])
        grad_x = grad_h = grad_w = grad_bias = grad_a = grad_b = None
        if need_h or need_a or (ctx.shared and need_x):
            g_t = (g @ lora_b).mul_(ctx.scale)  # gradient at t = h A^T, (tokens, r)
        if ctx.shared:
            if need_x:  # x feeds both branches: accumulate the LoRA part into the base part's GEMM
                grad_x = (g @ weight).addmm_(g_t, lora_a).view(h.shape)
        else:
            if need_x:
                grad_x = (g @ weight).view(h.shape)  # h has x's shape
            if need_h:
                grad_h = (g_t @ lora_a).view(h.shape)
        if need_w:
            grad_w = g.T @ x.reshape(-1, x.shape[-1])
        if need_bias:
            grad_bias = g.sum(0)
        if need_a:
            grad_a = g_t.T @ h2
        if need_b:
            if torch.is_grad_enabled():  # double backward: t must carry its graph back to h and A
                t = h2 @ lora_a.T
            grad_b = (g.T @ t).mul_(ctx.scale)
        return grad_x, grad_h, grad_w, grad_bias, grad_a, grad_b, None


def _compute(
    x: torch.Tensor,
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    x2 = x.reshape(-1, x.shape[-1])
    h2 = x2 if h is x else h.reshape(-1, h.shape[-1])
    t = h2 @ lora_a.T
    out = torch.addmm(bias, x2, weight.T) if bias is not None else x2 @ weight.T
    out.addmm_(t, lora_b.T, alpha=scale)  # a fresh tensor of ours: safe to write in place
    return out.view(x.shape[:-1] + (out.shape[-1],)), t


def lora_linear(
    x: torch.Tensor,
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """``F.linear(x, weight, bias) + scale * F.linear(F.linear(h, lora_a), lora_b)``, fused.

    All tensors share one dtype and device; ``h`` is ``x`` or a tensor of the same shape.
    """
    if not torch.is_grad_enabled():
        return _compute(x, h, weight, bias, lora_a, lora_b, scale)[0]
    if _functorch_transforms_active():
        return F.linear(x, weight, bias) + F.linear(F.linear(h, lora_a), lora_b) * scale
    return _FusedLoraLinear.apply(x, h, weight, bias, lora_a, lora_b, scale)


def _functorch_transforms_active() -> bool:
    # torch.autograd.Function.apply asks the same question to route torch.func transforms.
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active and active())


def _global_hooks() -> bool:
    # Hooks registered with torch.nn.modules.module.register_module_*_hook apply to every module.
    mod = torch.nn.modules.module
    names = (
        "_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks", "_global_backward_hooks"
    )
    return any(getattr(mod, n, None) for n in names)


def is_plain_linear(module: torch.nn.Module) -> bool:
    """True when calling ``F.linear`` directly is indistinguishable from calling ``module``.

    That is an exact ``nn.Linear`` (not a subclass, not parametrized, no per-instance ``forward``)
    with no module hooks: accelerate / DeepSpeed offloading, quantized layers, hooks that read
    activations all keep the unfused path, which calls the base layer as a module.
    """
    return (
        type(module) is torch.nn.Linear
        and "forward" not in module.__dict__
        and not (module._forward_pre_hooks or module._forward_hooks)
        and not (module._backward_pre_hooks or module._backward_hooks)
        and not _global_hooks()
    )
