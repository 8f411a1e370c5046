"""The ``restuning`` tuner: forward hooks on the tapped blocks, a wrapper around the head.

Saved keys are ``<logical head name>.restuning.<ladder parameter>`` (the ladder only).
"""

from __future__ import annotations

import functools
from typing import Iterator

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from swiftune.module_utils import Site, iter_sites, name_matches, output_embedding_names, set_module
from swiftune.serialization import load_checked
from swiftune.tuner import Tuner
from swiftune.structure import hidden_size, linear_features, select_blocks, wrapper_sites

from .config import ResTuningConfig
from .ladder import Ladder
from .layer import ResTuningHead


class ResTuning(Tuner):
    name = "restuning"
    calls_frozen_linears_only = True
    description = "Res-Tuning bypass: tuners read detached backbone activations; no backward through the backbone"
    config_class = ResTuningConfig
    mergeable = False
    identity_at_init = True
    default_targets_need_transformers = True

    config: ResTuningConfig

    def __init__(self, adapter_name: str, config: ResTuningConfig) -> None:
        super().__init__(adapter_name, config)
        self._hooks: list[RemovableHandle] = []

    # -- injection ------------------------------------------------------------------------------------
    def _head_site(self, model: nn.Module) -> Site:
        spec = self.config.head
        if spec is None:
            names = output_embedding_names(model)
            if not names:
                raise ValueError("the model has no output embeddings (get_output_embeddings()); set head")
            found = [s for s in iter_sites(model) if s.name in names]
        else:
            found = [s for s in iter_sites(model) if name_matches(s.name, spec)]
        if len(found) != 1:
            raise ValueError(f"head={spec!r} must match exactly one module; matched {[s.name for s in found][:5]}")
        return found[0]

    def inject(self, model: nn.Module) -> None:
        cfg = self.config
        head = self._head_site(model)
        blocks = select_blocks(model, cfg.target_modules, cfg.exclude_modules)
        blocks = [b for b in blocks if b.name != head.name]
        if not blocks:
            raise ValueError(f"target_modules={cfg.target_modules!r} matched no module of the model")
        width = cfg.hidden_size or hidden_size(model)
        head_features = linear_features(head.base)
        head_in = head_features[0] if head_features else width
        features = []
        for b in blocks:
            f = linear_features(b.base)
            features.append(f[1] if f else width)
        if head_in is None or None in features:
            raise ValueError("cannot tell the hidden width of the head or of a tapped block; set hidden_size")
        ladder = Ladder(features, cfg.bypass_dim, head_in, cfg.act, cfg.dropout)  # type: ignore[arg-type]
        ref = next(head.base.parameters(), None)
        if ref is not None and ref.is_floating_point():
            ladder = ladder.to(ref.device, ref.dtype)
        wrapper = head.module
        if not isinstance(wrapper, ResTuningHead):
            wrapper = ResTuningHead(head.module)
            set_module(model, head.path, wrapper)
        wrapper.restuning[self.adapter_name] = ladder.train(wrapper.training)
        # Hooks go on the blocks themselves, not their wrappers: they survive wrappers coming and going.
        self._hooks = [b.base.register_forward_hook(functools.partial(ladder.tap, i)) for i, b in enumerate(blocks)]
        self._hooks.append(model.register_forward_pre_hook(ladder.begin, with_kwargs=True))

    def _head(self, model: nn.Module) -> tuple[str, str, ResTuningHead] | None:
        for name, path, layer in wrapper_sites(model, ResTuningHead):
            if self.adapter_name in layer.restuning:
                return name, path, layer  # type: ignore[return-value]
        return None

    def _ladder(self, model: nn.Module) -> tuple[str, str, Ladder]:
        found = self._head(model)
        if found is None:
            raise RuntimeError(f"restuning adapter '{self.adapter_name}' is not in this model")
        name, path, layer = found
        return name, path, layer.ladder(self.adapter_name)

    def set_active(self, model: nn.Module, active: bool) -> None:
        found = self._head(model)
        if found is not None:
            found[2].set_adapter_active(self.adapter_name, active)
            ladder = found[2].ladder(self.adapter_name)
            ladder.enabled = active
            ladder.reset()

    def remove(self, model: nn.Module) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        found = self._head(model)
        if found is not None:
            _, path, layer = found
            layer.delete_adapter(self.adapter_name)
            if not layer.adapter_names:
                set_module(model, path, layer.base_layer)

    # -- parameters and state -----------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        _, path, ladder = self._ladder(model)
        for k, p in ladder.named_parameters():
            yield f"{path}.restuning.{self.adapter_name}.{k}", p

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        name, _, ladder = self._ladder(model)
        return {f"{name}.restuning.{k}": p.detach() for k, p in ladder.named_parameters()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        name, _, ladder = self._ladder(model)
        load_checked({f"{name}.restuning.{k}": (p, name) for k, p in ladder.named_parameters()}, state_dict, self.adapter_name)
