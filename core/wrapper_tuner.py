"""``WrapperLayerTuner``: the shared on / off / remove of tuners whose adapters live in
``WrapperLayer`` wrappers (adapter, part, side), so each such tuner writes only ``layers(model)``."""

from __future__ import annotations

from typing import Iterator, Protocol

from torch import nn

from .layers import WrapperLayer
from .module_utils import set_module


class _WrapperTuner(Protocol):
    adapter_name: str

    def layers(self, model: nn.Module) -> Iterator[tuple[str, str, WrapperLayer]]: ...


class WrapperLayerTuner:
    """``set_active`` / ``remove`` for a ``Tuner`` whose adapter lives in the wrappers that its
    ``layers(model)`` yields as ``(logical name, path, wrapper)``. Mix in before ``Tuner``."""

    def set_active(self: _WrapperTuner, model: nn.Module, active: bool) -> None:
        for _, _, layer in self.layers(model):
            layer.set_adapter_active(self.adapter_name, active)

    def remove(self: _WrapperTuner, model: nn.Module) -> None:
        for _, path, layer in reversed(list(self.layers(model))):  # inner first: paths above stay valid
            layer.delete_adapter(self.adapter_name)
            if not layer.adapter_names:
                set_module(model, path, layer.base_layer)
