"""DoRA (weight-decomposed LoRA) on LoRA's wrappers: forward, magnitude init, merge, unmerge.

DoRA rescales every output row ``i`` of the adapted weight to a trained length ``m_i``:
``W' = m * (W + s B A) / ||W + s B A||`` (row norms). "Rows" are the output axis: a Linear's
output features, a Conv2d's output channels (the norm over input channels and kernel), an
Embedding's dimensions (the norm over the vocabulary), as in PEFT. As in the paper (section 4.3)
and PEFT, the norm is treated as a constant in backward (computed without gradient), and the forward is written
as an addition to the base output, so dropout can act on the adapter's input only:
``y = W x + b + (f - 1) * (W h) + f * s * B A h`` with ``f = m / ||W + s B A||`` and ``h`` the
(dropped-out) input; embeddings have no dropout. With one adapter this is PEFT's formulation term
for term; the layer supplies ``W h`` and ``B A h`` (``dora_terms``) and the output's shape.

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
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .layer import LoraLayer

#: State-dict key suffix (PEFT's): one vector of ``out_features`` lengths per adapter.
MAGNITUDE_KEY = "lora_magnitude_vector"


def row_norm(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output row (everything but axis 0) of a weight."""
    return torch.linalg.vector_norm(weight.reshape(weight.shape[0], -1), dim=1)


def _rows(f: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-row factors shaped to broadcast over ``weight``."""
    return f.view(-1, *([1] * (weight.dim() - 1)))


def add_magnitude(layer: LoraLayer, name: str) -> None:
    """Start ``m`` at the row norms of the adapted weight, so the adapter starts where LoRA would.

    Stored in PEFT's shape: a vector, or (1, out, 1, 1) for Conv2d."""
    dtype = next(iter(layer.lora_tensors(name).values())).dtype
    with torch.no_grad():
        weight = layer.unmerged_weight()
        norm = row_norm(weight.float() + layer.lora_delta(name).float())
    if weight.dim() == 4:
        norm = norm.view(1, -1, 1, 1)
    layer.lora_magnitude_vector[name] = nn.Parameter(norm.to(device=weight.device, dtype=dtype))


def factor(layer: LoraLayer, name: str, weight: torch.Tensor) -> torch.Tensor:
    """``f = m / ||W + s B A||`` per output row, the norm without gradient (``weight`` is ``W``)."""
    magnitude = layer.lora_magnitude_vector[name].reshape(-1)
    with torch.no_grad():
        norm = row_norm(weight.to(magnitude.dtype) + layer.lora_delta(name).to(magnitude.dtype))
    return magnitude / norm


def forward(layer: LoraLayer, name: str, x: torch.Tensor, result: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
    """``result`` plus adapter ``name``'s DoRA term; ``base_out`` is the base layer's own output for ``x``."""
    weight = layer.unmerged_weight()
    f = layer.dora_view(factor(layer, name, weight))
    plain, lora = layer.dora_terms(name, x, weight, base_out)
    return result + ((f - 1) * plain + f * lora * layer.scaling[name]).to(result.dtype)


def unmerged_weight(layer: LoraLayer, weight: torch.Tensor) -> torch.Tensor:
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
            rest = rest - _rows(f, delta) * delta
            rows = rows + (f - 1)
    return rest / _rows(rows, rest)


def merge(layer: LoraLayer, name: str, weight: torch.Tensor) -> None:
    """Add ``(f - 1) W + f D`` to ``weight`` (the base's ``dense_weight`` view) and remember ``f``."""
    base = layer.unmerged_weight().float()
    f = factor(layer, name, base).detach().float()
    new = weight.float() + _rows(f - 1, base) * base + _rows(f, base) * layer.lora_delta(name).float()
    weight.copy_(new.to(weight.dtype))
    layer.dora_factors[name] = f


def unmerge(layer: LoraLayer, name: str, weight: torch.Tensor) -> None:
    """Take merged adapter ``name``'s contribution out of ``weight`` again."""
    base = layer.unmerged_weight().float()
    f = layer.dora_factors.pop(name)
    new = weight.float() - _rows(f - 1, base) * base - _rows(f, base) * layer.lora_delta(name).float()
    weight.copy_(new.to(weight.dtype))
