"""``WrapperLayer``: the base of modules that wrap a base layer and add per-adapter parts.

Tuners change a model's forward only by swapping a module for a wrapper (or by torch hooks);
classes and bound methods are never patched. Target search looks *through* wrappers, so several
adapters, of different tuners, can stack on the same base layer.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class WrapperLayer(nn.Module):
    """A module standing in for ``base_layer`` with adapters keyed by adapter name."""

    #: Names of ``nn.ModuleDict`` / ``nn.ParameterDict`` attributes keyed by adapter name.
    adapter_containers: tuple[str, ...] = ()

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.active_adapters: tuple[str, ...] = ()
        # A wrapper put into an eval-mode model must not run its dropout as if training.
        self.training = base_layer.training

    def __getattr__(self, name: str) -> Any:
        # Model code reads attributes through the wrapper (``self.lm_head.weight``,
        # ``self.cls.predictions``): whatever the wrapper lacks comes from the wrapped layer.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def get_base_layer(self) -> nn.Module:
        """The innermost non-wrapper module (wrappers may wrap wrappers)."""
        layer = self.base_layer
        while isinstance(layer, WrapperLayer):
            layer = layer.base_layer
        return layer

    @property
    def adapter_names(self) -> list[str]:
        names: list[str] = []
        for attr in self.adapter_containers:
            for key in getattr(self, attr).keys():
                if key not in names:
                    names.append(key)
        return names

    def set_adapter_active(self, name: str, active: bool) -> None:
        names = [n for n in self.active_adapters if n != name]
        if active:
            names.append(name)
        self.active_adapters = tuple(names)
        self._on_state_change()

    def delete_adapter(self, name: str) -> None:
        for attr in self.adapter_containers:
            container = getattr(self, attr)
            if name in container:
                del container[name]
        self.active_adapters = tuple(n for n in self.active_adapters if n != name)
        self._on_state_change()

    def _on_state_change(self) -> None:
        """Hook for subclasses that cache what the forward pass iterates over."""
