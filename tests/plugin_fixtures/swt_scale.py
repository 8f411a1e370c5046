"""A third-party tuner written only against swiftune's public API.

``scale`` multiplies each targeted ``nn.Linear``'s output by a learned per-feature vector (an
IA3-like output scaling). It is mergeable: the vector folds into the weight rows and the bias.
"""

from __future__ import annotations

from typing import Iterator, Literal

import torch
from torch import nn

import swiftune
from swiftune import AdapterLoadError, Tuner, TunerConfig, WrapperLayer
from swiftune.module_utils import find_targets, set_module


class ScaleConfig(TunerConfig):
    tuner: Literal["scale"] = "scale"
    target_modules: str | list[str] = "all-linear"


class ScaleLayer(WrapperLayer):
    adapter_containers = ("scale",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.scale = nn.ParameterDict()
        self.merged: set[str] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        for name in self.active_adapters:
            if name not in self.merged:
                out = out * self.scale[name]
        return out

    def fold(self, name: str, inverse: bool) -> None:
        base = self.get_base_layer()
        s = self.scale[name].detach()
        s = 1.0 / s if inverse else s
        with torch.no_grad():
            base.weight.mul_(s[:, None])
            if base.bias is not None:
                base.bias.mul_(s)
        (self.merged.discard if inverse else self.merged.add)(name)


class Scale(Tuner):
    name = "scale"
    description = "learned per-feature output scaling (third-party test plugin)"
    config_class = ScaleConfig
    mergeable = True

    def inject(self, model: nn.Module) -> None:
        sites = find_targets(model, self.config.target_modules, supported=lambda m: isinstance(m, nn.Linear))
        if not sites:
            raise ValueError(f"target_modules={self.config.target_modules!r} matched no nn.Linear")
        for site in sites:
            layer = site.module
            if not isinstance(layer, ScaleLayer):
                layer = ScaleLayer(layer)
                set_module(model, site.path, layer)
            weight = site.base.weight
            layer.scale[self.adapter_name] = nn.Parameter(torch.ones(weight.shape[0], dtype=weight.dtype))

    def layers(self, model: nn.Module) -> Iterator[tuple[str, ScaleLayer]]:
        for path, module in model.named_modules():
            if isinstance(module, ScaleLayer) and self.adapter_name in module.scale:
                yield path, module

    def set_active(self, model: nn.Module, active: bool) -> None:
        for _, layer in self.layers(model):
            layer.set_adapter_active(self.adapter_name, active)

    def remove(self, model: nn.Module) -> None:
        for path, layer in list(self.layers(model)):
            layer.delete_adapter(self.adapter_name)
            if not len(layer.scale):
                set_module(model, path, layer.base_layer)

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for path, layer in self.layers(model):
            yield f"{path}.scale.{self.adapter_name}", layer.scale[self.adapter_name]

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {f"{path}.scale": layer.scale[self.adapter_name].detach() for path, layer in self.layers(model)}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        expected = dict(self.layers(model))
        unexpected = sorted(set(state_dict) - {f"{p}.scale" for p in expected})
        if unexpected:
            raise AdapterLoadError(f"scale adapter '{self.adapter_name}': unexpected keys {unexpected}")
        for path, layer in expected.items():
            param = layer.scale[self.adapter_name]
            tensor = state_dict.get(f"{path}.scale")
            if tensor is None or tensor.shape != param.shape:
                got = None if tensor is None else tuple(tensor.shape)
                raise AdapterLoadError(f"scale adapter: '{path}' wants {tuple(param.shape)}, file has {got}")
            with torch.no_grad():
                param.copy_(tensor)

    def merge(self, model: nn.Module) -> None:
        for _, layer in self.layers(model):
            layer.fold(self.adapter_name, inverse=False)

    def unmerge(self, model: nn.Module) -> None:
        for _, layer in self.layers(model):
            layer.fold(self.adapter_name, inverse=True)


@swiftune.hookimpl
def register_tuners(register):
    register(Scale)
