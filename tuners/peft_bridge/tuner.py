"""The ``peft`` bridge tuner: any PEFT method that PEFT injects into layers, run by PEFT itself.

(P-Tuning and prompt tuning, which PEFT applies in ``PeftModel.forward``, are in prompt.py.)

Injection is ``peft.inject_adapter_in_model`` (no ``PeftModel`` around the model); state dicts
are ``peft.get_peft_model_state_dict`` / ``set_peft_model_state_dict``, so files are PEFT's own.
PEFT's injection also switches adapters and trainability on every PEFT layer; the bridge undoes
those side effects, since ``SwiftModel`` owns activity and ``requires_grad``.

PEFT keeps its configs in ``model.peft_config`` (``inject_adapter_in_model`` puts it there and
``get_peft_model_state_dict`` reads it to tell adapters apart): the bridge keeps that dict listing
exactly its adapters and removes it with the last one.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
from torch import nn

from swiftune.errors import AdapterLoadError
from swiftune.modules_to_save import PEFT_PREFIX
from swiftune.module_utils import set_module
from swiftune.serialization import check_no_unexpected, check_tensor
from swiftune.tuner import Capabilities, Tuner

from .config import PeftBridgeConfig

REGISTRY_ATTR = "peft_config"


def _tuner_layer_cls() -> type:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return BaseTunerLayer


@contextlib.contextmanager
def _keep_requires_grad(module: nn.Module) -> Iterator[None]:
    """PEFT's ``set_adapter`` / injection flip ``requires_grad``; SwiftModel decides it instead."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class PeftBridge(Tuner):
    name = "peft"
    description = "any PEFT method PEFT injects into layers (IA3, LoHa, LoKr, AdaLoRA, LoRA, OFT, ...), run by PEFT"
    config_class = PeftBridgeConfig
    peft_fallback = True  # PEFT files no tuner claims by peft_type, and peft.PeftConfig objects
    #: Class default; each instance narrows it to what its injected PEFT layers can merge.
    mergeable = True
    identity_at_init = True
    peft_compatible = True

    config: PeftBridgeConfig

    def __new__(cls, adapter_name: str, config: PeftBridgeConfig) -> "PeftBridge":
        # PEFT runs P-Tuning / prompt tuning in PeftModel.forward, not in layers: another code path.
        if cls is PeftBridge and isinstance(config, PeftBridgeConfig) and config.is_prompt_learning:
            from .prompt import PeftPromptBridge

            cls = PeftPromptBridge
        return super().__new__(cls)

    @classmethod
    def capabilities(cls, config: PeftBridgeConfig) -> Capabilities:
        if cls is PeftBridge and config.is_prompt_learning:  # what PeftBridge(...) returns for it
            from .prompt import PeftPromptBridge

            return PeftPromptBridge.capabilities(config)
        # IA3 trains one scaling vector per layer: it learns, but cannot fit the conformance suite's
        # batch at its fixed learning rate (test_tuner_peft_bridge shows its loss falling).
        return super().capabilities(config).replace(memorises=config.method != "IA3")

    # -- injection -------------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        import peft

        if self.config.method == "ADALORA" and not self.loading:
            warnings.warn(
                "peft bridge: AdaLoRA's rank reallocation (update_and_allocate) and orthogonality loss live in "
                "PEFT's AdaLoraModel and do not run here; the adapter trains at its initial rank",
                stacklevel=3,
            )
        layer_cls = _tuner_layer_cls()
        existing = [m for m in model.modules() if isinstance(m, layer_cls)]
        active_before = [(m, list(m.active_adapters)) for m in existing]
        registry = dict(getattr(model, REGISTRY_ATTR, None) or {})
        self._set_registry(model, {})  # PEFT would add to it (with a warning); it is rebuilt below
        peft_cfg = self.config.build()
        try:
            with _keep_requires_grad(model):
                peft.inject_adapter_in_model(peft_cfg, model, adapter_name=self.adapter_name)
        except Exception as exc:
            self._set_registry(model, registry)
            raise ValueError(f"PEFT could not inject {self.config.method}: {exc}") from exc
        self._set_registry(model, {**registry, self.adapter_name: peft_cfg})
        for layer, names in active_before:  # PEFT made the new adapter the only active one everywhere
            with _keep_requires_grad(layer):
                layer.set_adapter(names)
        layers = list(self.layers(model))
        for _, layer in layers:
            for p in self._own_parameters(layer).values():
                p.requires_grad_(False)
        self.mergeable = all(self._can_merge(layer) for _, layer in layers)

    @staticmethod
    def _can_merge(layer: nn.Module) -> bool:
        return type(layer).merge is not _tuner_layer_cls().merge

    @staticmethod
    def _set_registry(model: nn.Module, registry: dict[str, Any]) -> None:
        if registry:
            setattr(model, REGISTRY_ATTR, registry)
        elif hasattr(model, REGISTRY_ATTR):
            delattr(model, REGISTRY_ATTR)

    def layers(self, model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
        layer_cls = _tuner_layer_cls()
        for path, module in model.named_modules():
            if isinstance(module, layer_cls) and self.adapter_name in module._all_available_adapter_names():
                yield path, module

    def _own_parameters(self, layer: nn.Module) -> dict[str, nn.Parameter]:
        """This adapter's trainable tensors on ``layer``, by name relative to the layer."""
        frozen = set(layer.frozen_peft_weight_names.get(self.adapter_name, ()))
        out: dict[str, nn.Parameter] = {}
        for attr in layer.adapter_layer_names:
            container = getattr(layer, attr, None)
            if attr in frozen or container is None or self.adapter_name not in container:
                continue
            part = container[self.adapter_name]
            if isinstance(part, nn.Parameter):
                out[f"{attr}.{self.adapter_name}"] = part
            elif isinstance(part, nn.Module):
                for n, p in part.named_parameters():
                    out[f"{attr}.{self.adapter_name}.{n}"] = p
        return out

    def set_active(self, model: nn.Module, active: bool) -> None:
        for _, layer in self.layers(model):
            names = [n for n in layer.active_adapters if n != self.adapter_name]
            with _keep_requires_grad(layer):
                layer.set_adapter(names + [self.adapter_name] if active else names)

    def remove(self, model: nn.Module) -> None:
        for path, layer in list(self.layers(model)):
            names = [n for n in layer.active_adapters if n != self.adapter_name]
            with _keep_requires_grad(layer):
                layer.delete_adapter(self.adapter_name)
                if layer._all_available_adapter_names():
                    layer.set_adapter(names)
            if not layer._all_available_adapter_names():
                set_module(model, path, layer.base_layer)
        registry = dict(getattr(model, REGISTRY_ATTR, None) or {})
        registry.pop(self.adapter_name, None)
        self._set_registry(model, registry)

    # -- parameters and state ----------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for path, layer in self.layers(model):
            for suffix, p in self._own_parameters(layer).items():
                yield f"{path}.{suffix}", p

    def _peft_state(self, model: nn.Module, keep_vars: bool) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        state = model.state_dict(keep_vars=keep_vars)
        own = get_peft_model_state_dict(model, state_dict=state, adapter_name=self.adapter_name, save_embedding_layers=False)
        return {f"{PEFT_PREFIX}{k}": v for k, v in own.items()}

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self._peft_state(model, keep_vars=False).items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        expected = self._peft_state(model, keep_vars=True)
        # PEFT also saves the whole base weight of a targeted embedding layer; it loads like PEFT loads it.
        layer_paths = {f"{PEFT_PREFIX}{path}." for path, _ in self.layers(model)}
        base_keys = {k for k in state_dict if k.endswith(".base_layer.weight") and k.rsplit("base_layer.weight")[0] in layer_paths}
        for key, dest in expected.items():  # every check before the first copy: a failed load changes nothing
            check_tensor(dest, state_dict, key, key.removeprefix(PEFT_PREFIX).rsplit(".", 2)[0])
        check_no_unexpected(state_dict, set(expected) | base_keys, self.adapter_name)
        result = set_peft_model_state_dict(model, dict(state_dict), adapter_name=self.adapter_name)
        wanted = {k.removeprefix(PEFT_PREFIX) for k in expected}
        missing = sorted(wanted & set(result.missing_keys))
        if result.unexpected_keys or missing:
            raise AdapterLoadError(
                f"adapter '{self.adapter_name}': PEFT did not load {missing[:5]} / found unexpected {list(result.unexpected_keys)[:5]}"
            )

    # -- merging ---------------------------------------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        if not self.mergeable:
            return super().merge(model)
        for _, layer in self.layers(model):
            if self.adapter_name not in layer.merged_adapters:
                layer.merge(adapter_names=[self.adapter_name])

    def unmerge(self, model: nn.Module) -> None:
        if not self.mergeable:
            return super().unmerge(model)
        for _, layer in self.layers(model):
            merged = list(layer.merged_adapters)
            if self.adapter_name in merged:
                layer.unmerge()  # PEFT unmerges every merged adapter of the layer ...
                others = [n for n in merged if n != self.adapter_name]
                if others:  # ... so the others go back in
                    layer.merge(adapter_names=others)
