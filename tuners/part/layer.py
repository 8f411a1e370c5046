"""``PartLayer``: runs a module with ``parameter + sum of active deltas`` for selected parameters.

The base parameters are never written while adapters are active: the layer calls the wrapped
module through ``torch.func.functional_call`` with the changed tensors, so disabling an adapter
gives the untouched base back exactly, and several adapters' changes add up. Merging writes
``base += delta`` into the parameter (and ``unmerge`` takes it out again).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from swiftune.layers import WrapperLayer


def _key(relative_name: str) -> str:
    """``ParameterDict`` keys cannot hold dots; ``base_layer.bias`` -> ``base_layer__bias``."""
    return relative_name.replace(".", "__")


class PartLayer(WrapperLayer):
    """Wraps the module owning selected parameters; holds each adapter's deltas by adapter name."""

    adapter_containers = ("part_delta",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.part_delta = nn.ModuleDict()
        #: adapter -> {ParameterDict key: name of the parameter relative to ``base_layer``}
        self.relative_names: dict[str, dict[str, str]] = {}
        self.merged: set[str] = set()
        self._run: tuple[str, ...] = ()

    def add_delta(self, adapter: str, relative_name: str, delta: nn.Parameter) -> None:
        if adapter not in self.part_delta:
            self.part_delta[adapter] = nn.ParameterDict()
            self.relative_names[adapter] = {}
        self.part_delta[adapter][_key(relative_name)] = delta
        self.relative_names[adapter][_key(relative_name)] = relative_name

    def deltas(self, adapter: str) -> dict[str, nn.Parameter]:
        """``{parameter name relative to base_layer: delta}`` of one adapter."""
        params = self.part_delta[adapter]
        return {rel: params[key] for key, rel in self.relative_names[adapter].items()}

    def base_parameter(self, relative_name: str) -> nn.Parameter:
        return self.base_layer.get_parameter(relative_name)

    def delete_adapter(self, name: str) -> None:
        self.relative_names.pop(name, None)
        self.merged.discard(name)
        super().delete_adapter(name)

    def set_merged(self, name: str, merged: bool) -> None:
        (self.merged.add if merged else self.merged.discard)(name)
        self._on_state_change()

    def _on_state_change(self) -> None:
        self._run = tuple(n for n in self.active_adapters if n in self.part_delta and n not in self.merged)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self._run:
            return self.base_layer(*args, **kwargs)
        changed: dict[str, torch.Tensor] = {}
        for name in self._run:
            for rel, delta in self.deltas(name).items():
                current = changed[rel] if rel in changed else self.base_parameter(rel)
                changed[rel] = current + delta.to(current.dtype)
        return functional_call(self.base_layer, changed, args, kwargs, tie_weights=False, strict=False)
