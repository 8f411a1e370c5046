"""The ``side`` tuner: wraps the selected blocks in ``SideLayer``s.

Saved keys are ``<logical block name>.side.<parameter>`` and ``<logical block name>.side_alpha``.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from swiftune.module_utils import set_module
from swiftune.serialization import load_checked
from swiftune.tuner import Tuner

from .config import SideConfig
from .layer import SideLayer
from swiftune.structure import hidden_size, linear_features, select_blocks, wrapper_sites
from swiftune.wrapper_tuner import WrapperLayerTuner


class Side(WrapperLayerTuner, Tuner):
    name = "side"
    calls_frozen_linears_only = True
    description = "a small side network blended with a block's output through a learned gate"
    config_class = SideConfig
    mergeable = False
    identity_at_init = True
    default_targets_need_transformers = True

    config: SideConfig

    def inject(self, model: nn.Module) -> None:
        cfg = self.config
        sites = select_blocks(model, cfg.target_modules, cfg.exclude_modules)
        if not sites:
            raise ValueError(f"target_modules={cfg.target_modules!r} matched no module of the model")
        width = cfg.hidden_size or hidden_size(model)
        causal = cfg.causal
        if causal is None:
            can_generate = getattr(model, "can_generate", None)
            causal = bool(can_generate()) if callable(can_generate) else False
        planned = []
        for site in sites:
            features = linear_features(site.base)
            if features is not None and features[0] != features[1]:
                raise ValueError(f"target module '{site.name}' maps {features[0]} to {features[1]} features; a side "
                                 "network needs a block whose input and output widths agree")
            hidden = features[0] if features else width
            if hidden is None:
                raise ValueError(f"cannot tell the hidden width of target module '{site.name}'; set hidden_size")
            planned.append((site, hidden))
        for site, hidden in reversed(planned):  # inner modules first: wrapping changes paths below
            layer = site.module
            if not isinstance(layer, SideLayer):
                layer = SideLayer(site.module, hidden)
                set_module(model, site.path, layer)
            layer.add_adapter(
                self.adapter_name, cfg.side_type, cfg.side_width, cfg.num_heads, cfg.act, cfg.dropout,
                cfg.alpha_init, causal,
            )  # fmt: skip

    def layers(self, model: nn.Module) -> Iterator[tuple[str, str, SideLayer]]:
        """``(logical name, path, layer)`` of the blocks holding this adapter."""
        for name, path, layer in wrapper_sites(model, SideLayer):
            if self.adapter_name in layer.side:
                yield name, path, layer  # type: ignore[misc]

    def _tensors(self, layer: SideLayer) -> dict[str, nn.Parameter]:
        out = {f"side.{k}": p for k, p in layer.side[self.adapter_name].named_parameters()}
        out["side_alpha"] = layer.side_alpha[self.adapter_name]
        return out

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for _, path, layer in self.layers(model):
            for suffix, p in self._tensors(layer).items():
                yield f"{path}.{suffix}", p

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {f"{n}.{k}": p.detach() for n, _, layer in self.layers(model) for k, p in self._tensors(layer).items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        targets = {f"{n}.{k}": (p, n) for n, _, layer in self.layers(model) for k, p in self._tensors(layer).items()}
        load_checked(targets, state_dict, self.adapter_name)
