"""The ``qlora`` tuner: LoRA (the ``lora`` plugin's code) over a bitsandbytes-quantized base.

``prepare_model`` quantizes the base's linear layers (or accepts a model loaded quantized with
transformers' ``BitsAndBytesConfig``) and prepares it for k-bit training; ``inject`` puts
``QLoraLinear`` wrappers on quantized targets and lets LoRA's own injection add the adapters.
Saved files are PEFT's LoRA format, so PEFT loads them onto a 4-bit base.
"""

from __future__ import annotations

from torch import nn

from swiftune.module_utils import Site, find_targets, set_module
from swiftune.tuner import Capabilities
from swiftune.tuners.lora import Lora
from swiftune.tuners.lora import layer as lora_layer

from .config import QLoraConfig
from .layer import QLoraLinear
from .quantize import dequantize_model, is_float_linear, is_quantized, prepare_kbit_training, quantize_sites


class QLora(Lora):
    name = "qlora"
    description = "LoRA over a bitsandbytes 4-bit (NF4/FP4, double quant) or 8-bit base; merge dequantizes"
    config_class = QLoraConfig
    mergeable = True
    identity_at_init = True
    peft_compatible = True

    config: QLoraConfig

    @classmethod
    def capabilities(cls, config: QLoraConfig) -> Capabilities:
        # Gradient checkpointing is switched on through transformers' PreTrainedModel API.
        caps = super().capabilities(config)
        return caps.replace(needs_transformers_model=caps.needs_transformers_model or config.gradient_checkpointing)

    def __init__(self, adapter_name: str, config: QLoraConfig) -> None:
        super().__init__(adapter_name, config)
        self._merged = False

    @property
    def _where(self) -> str:
        return f"qlora (adapter '{self.adapter_name}')"

    # -- preparation -------------------------------------------------------------------------------------
    def _lora_sites(self, model: nn.Module) -> list[Site]:
        cfg = self.config
        return find_targets(
            model,
            cfg.target_modules,
            supported=lora_layer.supported,
            exclude_modules=cfg.exclude_modules,
            layers_to_transform=cfg.layers_to_transform,
            layers_pattern=cfg.layers_pattern,
            skip_names=self._modules_to_save_names(model),
        )

    def _quantize_sites(self, model: nn.Module) -> list[Site]:
        cfg = self.config
        if cfg.quantize_modules is None:
            return [s for s in self._lora_sites(model) if is_quantized(s.base) or is_float_linear(s.base)]
        return find_targets(
            model,
            cfg.quantize_modules,
            supported=lambda m: is_quantized(m) or is_float_linear(m),
            skip_names=self._modules_to_save_names(model),  # trained in full: they stay float
        )

    def prepare_model(self, model: nn.Module) -> nn.Module:
        quantize_sites(model, self._quantize_sites(model), self.config, self._where)
        prepare_kbit_training(model, self.config.gradient_checkpointing, self._where)
        return model

    # -- injection -------------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        # Quantized targets get the bnb-aware wrapper first; LoRA's injection then adds the adapter
        # to it as to any existing LoRA wrapper. Float targets get LoRA's plain wrappers.
        for site in self._lora_sites(model):
            if is_quantized(site.base) and not isinstance(site.module, lora_layer.LoraLayer):
                set_module(model, site.path, QLoraLinear(site.module))
        try:
            super().inject(model)
        finally:
            for path, module in list(model.named_modules()):
                if isinstance(module, QLoraLinear) and not module.scaling:
                    set_module(model, path, module.base_layer)

    # -- merging ---------------------------------------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        super().merge(model)
        self._merged = True

    def unmerge(self, model: nn.Module) -> None:
        super().unmerge(model)
        self._merged = False

    def remove(self, model: nn.Module) -> None:
        super().remove(model)
        if self._merged:
            # Removing a merged adapter is merge_and_unload: the result is a float model throughout,
            # including quantized layers the adapter did not target.
            dequantize_model(model)
