"""LoRA initialisations that start from the base weight: PiSSA (SVD) and OLoRA (QR).

Both put a rank-r part of the weight ``W`` into the adapter and leave the rest in the base, so the
model's output is unchanged at the start while the adapter begins on the weight's principal
directions instead of at zero:

* ``pissa``: ``W = U S V^T``; ``B = U_r sqrt(S_r / s)``, ``A = sqrt(S_r / s) V_r^T`` (``s`` the LoRA
  scaling), base ``W - s B A``. ``pissa_niter_N``: the same from ``torch.svd_lowrank`` with N
  power iterations (faster on large weights, random: the seed matters).
* ``olora``: ``W = Q R``; ``B = Q[:, :r]`` (orthonormal columns), ``A = R[:r]``, base ``W - s B A``.

The arithmetic is PEFT's (fp32, the result written back in the weight's dtype), so the same base
gives the same A, B and residual. Because the base weight changes, such an adapter is loaded onto
the *original* base: loading repeats the initialisation (deterministic for ``pissa`` and ``olora``)
and then reads the trained A, B, as PEFT does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .layer import LoraLinear

_FLOAT = (torch.float32, torch.float16, torch.bfloat16)


def initialise(layer: LoraLinear, name: str, method: str) -> None:
    """Set adapter ``name``'s A and B by ``method`` and subtract ``s B A`` from the base weight."""
    stored = layer.get_base_layer().weight.dtype
    if stored not in _FLOAT:
        raise ValueError(
            f"init_lora_weights={method!r} rewrites the base weight and needs a float one, not {stored} "
            "(a quantized base: initialise with the lora tuner on the float model, then quantize the residual)"
        )
    weight = layer.dense_weight()
    r = layer.lora_A[name].weight.shape[0]
    if r > min(weight.shape):
        raise ValueError(f"init_lora_weights={method!r}: r={r} exceeds the weight's smaller side {min(weight.shape)}")
    scaling = layer.scaling[name]
    w = weight.detach().float()
    if method == "olora":
        q, upper = torch.linalg.qr(w)
        a, b = upper[:r], q[:, :r]
    elif method == "pissa" or method.startswith("pissa_niter_"):
        u, s, vh = _top_singular(w, r, method)
        s = s / scaling
        a = torch.diag(torch.sqrt(s)) @ vh
        b = u @ torch.diag(torch.sqrt(s))
    else:
        raise ValueError(f"unknown init_lora_weights={method!r}")
    with torch.no_grad():
        layer.lora_A[name].weight.copy_(a)
        layer.lora_B[name].weight.copy_(b)
        residual = w - scaling * layer.lora_B[name].weight.float() @ layer.lora_A[name].weight.float()
        # A new tensor, not an in-place copy: if adding the adapter fails later (a later layer, a
        # later adapter), the rollback puts the original weight back.
        base = layer.get_base_layer().weight
        residual = residual.T if layer.fan_in_fan_out else residual  # back to the stored layout
        base.data = residual.to(dtype=base.dtype, device=base.device).contiguous()


def _top_singular(w: torch.Tensor, r: int, method: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The r largest singular triplets: (U_r, S_r, V_r^T)."""
    if method == "pissa":
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        return u[:, :r], s[:r], vh[:r]
    niter = int(method.removeprefix("pissa_niter_"))
    u, s, v = torch.svd_lowrank(w, r, niter=niter)
    return u, s, v.T
