"""The ``lora`` tuner: injects ``LoraLayer`` wrappers and reads / writes PEFT's LoRA format."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from swiftune.layers import WrapperLayer
from swiftune.modules_to_save import PEFT_PREFIX, ModulesToSave, TrainableCopy
from swiftune.module_utils import Site, find_targets, iter_sites, name_matches, set_module
from swiftune.serialization import load_checked
from swiftune.tuner import Capabilities, Tuner

from . import layer as lora_layer
from .config import LoraConfig


class Lora(Tuner):
    name = "lora"
    default_of_kind = True  # swiftune sft's tuner when none is named
    calls_frozen_linears_only = True
    description = "low-rank update on Linear / Embedding / GPT-2 Conv1D / Conv2d; mergeable"
    config_class = LoraConfig
    mergeable = True
    identity_at_init = True
    peft_compatible = True

    config: LoraConfig

    @classmethod
    def capabilities(cls, config: LoraConfig) -> Capabilities:
        # Trained biases (bias "all" / "lora_only") are base parameters; a random B changes the outputs at once.
        # PiSSA / OLoRA rewrite the base weight at init: with the adapter disabled the model is the residual,
        # not the original, as if training had moved the base. DoRA computes with the frozen weight (its row
        # norms), so storing that weight in bf16 would change its results.
        caps = super().capabilities(config)
        rewrites_base = isinstance(config.init_lora_weights, str) and config.init_lora_weights != "gaussian"
        return caps.replace(
            calls_frozen_linears_only=caps.calls_frozen_linears_only and not config.use_dora,
            trains_base_parameters=caps.trains_base_parameters or config.bias != "none" or rewrites_base,
            identity_at_init=caps.identity_at_init and config.init_lora_weights is not False,
        )

    def __init__(self, adapter_name: str, config: LoraConfig) -> None:
        super().__init__(adapter_name, config)
        self.extra_modules = ModulesToSave(adapter_name, config.modules_to_save)

    # -- injection -----------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        cfg = self.config
        sites = find_targets(
            model,
            cfg.target_modules,
            supported=lora_layer.supported,
            exclude_modules=cfg.exclude_modules,
            layers_to_transform=cfg.layers_to_transform,
            layers_pattern=cfg.layers_pattern,
            skip_names=self._modules_to_save_names(model),
        )
        if not sites:
            raise ValueError(f"target_modules={cfg.target_modules!r} matched no supported module of the model")
        if cfg.use_dora:
            check_dora_targets(sites)
        for site in sites:
            wrapper = site.module
            if not isinstance(wrapper, lora_layer.LoraLayer):
                wrapper = lora_layer.wrap(site.module, cfg.fan_in_fan_out)
                set_module(model, site.path, wrapper)
            wrapper.add_adapter(self.adapter_name, cfg.r, cfg.scaling, cfg.lora_dropout, cfg.init_lora_weights)
            if cfg.use_dora:
                wrapper.add_dora(self.adapter_name)
        self.extra_modules.inject(model)

    def _modules_to_save_names(self, model: nn.Module) -> set[str]:
        """Modules trained in full (and everything inside them) get no LoRA, as in PEFT."""
        spec = self.config.modules_to_save
        if not spec:
            return set()
        names = [s.name for s in iter_sites(model)]
        roots = [n for n in names if name_matches(n, spec)]
        return {n for n in names if any(n == r or n.startswith(r + ".") for r in roots)}

    def layers(self, model: nn.Module) -> Iterator[tuple[str, lora_layer.LoraLayer]]:
        for path, module in model.named_modules():
            if isinstance(module, lora_layer.LoraLayer) and self.adapter_name in module.scaling:
                yield path, module

    def logical_layers(self, model: nn.Module) -> Iterator[tuple[str, lora_layer.LoraLayer]]:
        """``layers`` under logical names (through other tuners' wrappers): the names keys use."""
        for site in iter_sites(model):
            module = site.module
            while isinstance(module, WrapperLayer):
                if isinstance(module, lora_layer.LoraLayer) and self.adapter_name in module.scaling:
                    yield site.name, module
                module = module.base_layer

    def set_active(self, model: nn.Module, active: bool) -> None:
        for _, layer in self.layers(model):
            layer.set_adapter_active(self.adapter_name, active)
        self.extra_modules.set_active(model, active)

    def remove(self, model: nn.Module) -> None:
        for path, layer in list(self.layers(model)):
            layer.delete_adapter(self.adapter_name)
            if not layer.scaling:
                set_module(model, path, layer.base_layer)
        self.extra_modules.remove(model)

    # -- parameters and state --------------------------------------------------------------------------
    def _bias_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        if self.config.bias == "none":
            return
        names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
        if self.config.bias == "all":
            # Biases of LoRA parts and of modules_to_save (whose copies train in full) are not base biases.
            skip = {id(p) for _, layer in self.layers(model) for p in layer.adapter_tensors(self.adapter_name).values()}
            for m in model.modules():
                if isinstance(m, TrainableCopy):
                    skip |= {id(p) for p in m.parameters()}
            for n, p in model.named_parameters():
                if n.endswith("bias") and id(p) not in skip:
                    yield n, p
        else:
            for _, layer in self.layers(model):
                bias = getattr(layer.get_base_layer(), "bias", None)
                if isinstance(bias, nn.Parameter):
                    yield names[id(bias)], bias

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for path, layer in self.layers(model):
            for suffix, p in layer.adapter_tensors(self.adapter_name).items():
                yield f"{path}.{suffix}", p
        yield from self._bias_parameters(model)
        yield from self.extra_modules.named_trainable_parameters(model)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for path, layer in self.logical_layers(model):
            for suffix, tensor in layer.adapter_tensors(self.adapter_name).items():
                out[f"{PEFT_PREFIX}{path}.{suffix}"] = tensor
        for n, p in self._bias_parameters(model):
            out[f"{PEFT_PREFIX}{n}"] = p
        out.update(self.extra_modules.state_dict(model))
        return {k: v.detach() for k, v in out.items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        targets: dict[str, tuple[torch.Tensor, str]] = {}
        for path, layer in self.logical_layers(model):
            for suffix, tensor in layer.adapter_tensors(self.adapter_name).items():
                targets[f"{PEFT_PREFIX}{path}.{suffix}"] = (tensor, path)
            # PEFT saves the whole base weight of targeted embedding / lm_head layers (they may have
            # been resized or trained); loading it, as PEFT does, gives the same model.
            base_key = f"{PEFT_PREFIX}{path}.base_layer.weight"
            if base_key in state_dict:
                targets[base_key] = (layer.get_base_layer().weight, path)
        for n, p in self._bias_parameters(model):
            targets[f"{PEFT_PREFIX}{n}"] = (p, n.rpartition(".")[0])
        targets.update(self.extra_modules.load_targets(model, state_dict))
        load_checked(targets, state_dict, self.adapter_name)

    # -- merging ---------------------------------------------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        for _, layer in self.layers(model):
            layer.merge(self.adapter_name)
        self.extra_modules.merged = True

    def unmerge(self, model: nn.Module) -> None:
        for _, layer in self.layers(model):
            layer.unmerge(self.adapter_name)
        self.extra_modules.merged = False


def check_dora_targets(sites: list[Site]) -> None:
    """Name the first target DoRA cannot handle before anything changes."""
    for site in sites:
        if isinstance(site.base, nn.Conv2d) and site.base.padding_mode != "zeros":
            raise ValueError(
                f"use_dora: '{site.name}' is a Conv2d with padding_mode='{site.base.padding_mode}'; DoRA supports "
                "zero padding only (leave it out of target_modules, or use_dora=False)"
            )
