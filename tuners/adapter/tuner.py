"""The ``adapter`` tuner: wraps the targeted modules in ``AdapterLayer``s.

Saved keys are ``<logical module name>.adapter_down.weight`` (and ``.bias``, ``adapter_up.*``);
logical names look through other tuners' wrappers, so a file loads whatever else is stacked.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from swiftune.module_utils import find_targets, set_module
from swiftune.serialization import load_checked
from swiftune.tuner import Tuner
from swiftune.structure import hidden_size, linear_features, wrapper_sites
from swiftune.wrapper_tuner import WrapperLayerTuner

from .config import AdapterConfig
from .layer import AdapterLayer


class Adapter(WrapperLayerTuner, Tuner):
    name = "adapter"
    calls_frozen_linears_only = True
    description = "Houlsby bottleneck (down, act, up, residual) after attention / MLP outputs"
    config_class = AdapterConfig
    mergeable = False
    identity_at_init = True
    default_targets_need_transformers = True

    config: AdapterConfig

    def inject(self, model: nn.Module) -> None:
        cfg = self.config
        sites = find_targets(
            model,
            cfg.target_modules,
            supported=lambda m: True,
            exclude_modules=cfg.exclude_modules,
            layers_to_transform=cfg.layers_to_transform,
            layers_pattern=cfg.layers_pattern,
        )
        if not sites:
            raise ValueError(f"target_modules={cfg.target_modules!r} matched no module of the model")
        width = hidden_size(model)
        planned = []
        for site in sites:
            features = linear_features(site.base)
            out = features[1] if features else width
            if out is None:
                raise ValueError(
                    f"cannot tell the output width of target module '{site.name}' ({type(site.base).__name__}); "
                    "target Linear layers, or modules of a transformers model with a hidden_size"
                )
            planned.append((site, out))
        for site, out in reversed(planned):  # inner modules first: wrapping changes paths below
            layer = site.module
            if not isinstance(layer, AdapterLayer):
                layer = AdapterLayer(site.module, out)
                set_module(model, site.path, layer)
            layer.add_adapter(self.adapter_name, cfg.bottleneck(out), cfg.act, cfg.dropout)

    def layers(self, model: nn.Module) -> Iterator[tuple[str, str, AdapterLayer]]:
        """``(logical name, path, layer)`` of the layers holding this adapter."""
        for name, path, layer in wrapper_sites(model, AdapterLayer):
            if self.adapter_name in layer.adapter_down:
                yield name, path, layer  # type: ignore[misc]

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for _, path, layer in self.layers(model):
            for suffix, p in layer.adapter_tensors(self.adapter_name).items():
                yield f"{path}.{suffix}", p  # type: ignore[misc]

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {
            f"{name}.{suffix}": t.detach()
            for name, _, layer in self.layers(model)
            for suffix, t in layer.adapter_tensors(self.adapter_name).items()
        }

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        targets = {
            f"{name}.{suffix}": (t, name)
            for name, _, layer in self.layers(model)
            for suffix, t in layer.adapter_tensors(self.adapter_name).items()
        }
        load_checked(targets, state_dict, self.adapter_name)
