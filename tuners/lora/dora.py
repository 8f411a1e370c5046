"""DoRA (weight-decomposed LoRA) on LoRA's Linear wrapper: forward, magnitude init, merge, unmerge.

DoRA rescales every output row ``i`` of the adapted weight to a trained length ``m_i``:
``W' = m * (W + s B A) / ||W + s B A||`` (row norms). As in the paper (section 4.3) and PEFT, the
norm is treated as a constant in backward (computed without gradient), and the forward is written
as an addition to the base output, so dropout can act on the adapter's input only:
``y = W x + b + (f - 1) * (W h) + f * s * B A h`` with ``f = m / ||W + s B A||`` and ``h`` the
(dropped-out) input. With one adapter this is PEFT's formulation term for term.

Several adapters on one layer add up: each DoRA adapter contributes ``(f_i - 1) W + f_i s B_i A_i``
relative to the *unmerged* base weight ``W``, whatever else is active or merged. (PEFT instead
chains DoRA adapters, each rescaling what the previous ones produced.) Merging therefore adds that
same contribution to the weight and records ``f_i``; from the recorded factors the unmerged ``W``
can always be recovered from the merged weight, so merging and unmerging in any order is exact
up to rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .layer import LoraLinear

#: State-dict key suffix (PEFT's): one vector of ``out_features`` lengths per adapter.
MAGNITUDE_KEY = "lora_magnitude_vector"


def row_norm(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output row of an (out, in) weight."""
    return torch.linalg.norm(weight, dim=1)


def add_magnitude(layer: LoraLinear, name: str) -> None:
    """Start ``m`` at the row norms of the adapted weight, so the adapter starts where LoRA would."""
    a = layer.lora_A[name].weight
    with torch.no_grad():
        norm = row_norm(layer.unmerged_weight().float() + layer.lora_delta(name).float())
    layer.lora_magnitude_vector[name] = nn.Parameter(norm.to(device=a.device, dtype=a.dtype))


def factor(layer: LoraLinear, name: str, weight: torch.Tensor) -> torch.Tensor:
    """``f = m / ||W + s B A||`` per output row, the norm without gradient (``weight`` is ``W``)."""
    magnitude = layer.lora_magnitude_vector[name]
    with torch.no_grad():
        norm = row_norm(weight.to(magnitude.dtype) + layer.lora_delta(name).to(magnitude.dtype))
    return magnitude / norm


def forward(layer: LoraLinear, name: str, x: torch.Tensor, result: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
    """``result`` plus adapter ``name``'s DoRA term; ``base_out`` is the base layer's own output for ``x``."""
    a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
    autocast = torch.is_autocast_enabled(x.device.type)
    x = x if autocast else x.to(a.dtype)
    h = layer._drop(x, name)
    weight = layer.unmerged_weight()
    f = factor(layer, name, weight)
    base = layer.get_base_layer()
    reuse = h is x and not layer.merged_adapters and layer.base_layer is base
    if reuse:  # the base output already holds W x: no second GEMM
        plain = base_out if base.bias is None else base_out - base.bias
    else:  # dropout (or merged adapters, or another wrapper in between): W of the adapter's input
        plain = F.linear(h, weight.to(h.dtype))
    lora = F.linear(F.linear(h, a), b)
    return result + ((f - 1) * plain + f * lora * layer.scaling[name]).to(result.dtype)


def unmerged_weight(layer: LoraLinear, weight: torch.Tensor) -> torch.Tensor:
    """The base weight ``W`` (out, in) recovered from ``weight``, which holds the merged adapters.

    ``weight = W * (1 + sum_dora (f_j - 1)) + sum_dora f_j D_j + sum_lora D_k`` (``D`` = s B A), so
    ``W`` follows row by row. fp32, since it feeds further arithmetic.
    """
    rest = weight.float()
    rows = torch.ones(rest.shape[0], dtype=torch.float32, device=rest.device)
    for name in layer.merged_adapters:
        delta = layer.lora_delta(name).float()
        f = layer.dora_factors.get(name)
        if f is None:
            rest = rest - delta
        else:
            rest = rest - f[:, None] * delta
            rows = rows + (f - 1)
    return rest / rows[:, None]


def merge(layer: LoraLinear, name: str, weight: torch.Tensor) -> None:
    """Add ``(f - 1) W + f D`` to ``weight`` (the base's (out, in) view) and remember ``f``."""
    base = layer.unmerged_weight().float()
    f = factor(layer, name, base).detach().float()
    new = weight.float() + (f - 1)[:, None] * base + f[:, None] * layer.lora_delta(name).float()
    weight.copy_(new.to(weight.dtype))
    layer.dora_factors[name] = f


def unmerge(layer: LoraLinear, name: str, weight: torch.Tensor) -> None:
    """Take merged adapter ``name``'s contribution out of ``weight`` again."""
    base = layer.unmerged_weight().float()
    f = layer.dora_factors.pop(name)
    new = weight.float() - (f - 1)[:, None] * base - f[:, None] * layer.lora_delta(name).float()
    weight.copy_(new.to(weight.dtype))
