"""``ResTuningHead``: the model's head, fed its input plus the bypass of each active adapter."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from swiftune.layers import WrapperLayer

from .ladder import Ladder


class ResTuningHead(WrapperLayer):
    """Wraps the head (e.g. ``lm_head``); holds the ladders, keyed by adapter name."""

    adapter_containers = ("restuning",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.restuning = nn.ModuleDict()

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        for name in self.active_adapters:
            bypass = self.restuning[name].bypass()
            if bypass is None:
                raise RuntimeError(
                    f"restuning adapter '{name}': the head ran but none of the tapped blocks did in this pass"
                )
            x = x + _align(bypass, x, self.restuning[name].keep, name).to(x.dtype)
        return self.base_layer(x, *args, **kwargs)

    def delete_adapter(self, name: str) -> None:
        if name in self.restuning:
            self.restuning[name].reset()
        super().delete_adapter(name)

    def ladder(self, name: str) -> Ladder:
        return self.restuning[name]  # type: ignore[return-value]


def _align(bypass: torch.Tensor, x: torch.Tensor, keep: int | torch.Tensor, name: str) -> torch.Tensor:
    """The bypass of the positions the head sees: all, the last ``keep``, or the positions in ``keep``
    (``logits_to_keep`` as an integer or a 1-D tensor)."""
    if isinstance(keep, torch.Tensor):
        if bypass.dim() >= 2:
            bypass = bypass[..., keep.to(bypass.device), :]
    elif keep and bypass.dim() >= 2 and bypass.shape[-2] > keep:
        bypass = bypass[..., -keep:, :]
    if bypass.shape != x.shape:
        raise RuntimeError(
            f"restuning adapter '{name}': the head's input has shape {tuple(x.shape)} but the tapped blocks "
            f"produced {tuple(bypass.shape)} (logits_to_keep={keep if isinstance(keep, int) else tuple(keep.shape)}); the head must see the blocks' positions"
        )
    return bypass
