"""``AdapterLayer``: a module's output plus one bottleneck per active adapter.

``y = base(x)``; ``y + sum_i up_i(act_i(down_i(dropout_i(y))))`` over the active adapters. The
adapters of one layer read the same ``y`` and add up, so the order they were activated in does not
matter. Modules returning tuples (attention blocks) get the adapters on their first element.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from swiftune.layers import WrapperLayer

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


class AdapterLayer(WrapperLayer):
    """Wraps ``base_layer`` (whose output has ``features`` channels in its last dimension)."""

    adapter_containers = ("adapter_down", "adapter_up")

    def __init__(self, base_layer: nn.Module, features: int) -> None:
        super().__init__(base_layer)
        self.features = features
        self.adapter_down = nn.ModuleDict()
        self.adapter_up = nn.ModuleDict()
        self.act: dict[str, str] = {}
        self.dropout_p: dict[str, float] = {}

    def add_adapter(self, name: str, dim: int, act: str, dropout: float) -> None:
        down = nn.Linear(self.features, dim)
        up = nn.Linear(dim, self.features)
        # A zero up projection makes the fresh adapter an exact identity.
        nn.init.zeros_(up.weight)
        nn.init.zeros_(up.bias)
        ref = next(self.get_base_layer().parameters(), None)
        if ref is not None:
            dtype = ref.dtype if ref.is_floating_point() else torch.float32
            down, up = down.to(ref.device, dtype), up.to(ref.device, dtype)
        self.adapter_down[name] = down.train(self.training)
        self.adapter_up[name] = up.train(self.training)
        self.act[name] = act
        self.dropout_p[name] = dropout

    def delete_adapter(self, name: str) -> None:
        self.act.pop(name, None)
        self.dropout_p.pop(name, None)
        super().delete_adapter(name)

    def adapter_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """``{key suffix: tensor}`` of one adapter (the on-disk names, without the adapter name)."""
        down, up = self.adapter_down[name], self.adapter_up[name]
        return {
            "adapter_down.weight": down.weight,
            "adapter_down.bias": down.bias,
            "adapter_up.weight": up.weight,
            "adapter_up.bias": up.bias,
        }

    def _delta(self, y: torch.Tensor, name: str) -> torch.Tensor:
        down, up = self.adapter_down[name], self.adapter_up[name]
        h = y if torch.is_autocast_enabled(y.device.type) else y.to(down.weight.dtype)
        p = self.dropout_p[name]
        if p > 0 and self.training:
            h = F.dropout(h, p, True)
        return up(ACTIVATIONS[self.act[name]](down(h)))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.base_layer(*args, **kwargs)
        if not self.active_adapters:
            return out
        y = out[0] if isinstance(out, tuple) else out
        delta = None
        for name in self.active_adapters:
            d = self._delta(y, name)
            delta = d if delta is None else delta + d
        y = y + delta.to(y.dtype)
        return (y, *out[1:]) if isinstance(out, tuple) else y
