"""``QLoraLinear``: LoRA's Linear wrapper over a bitsandbytes 4-bit / 8-bit layer.

Forward, adapters and PEFT key names are LoRA's own (``LoraLinear``); what differs is the base:
its sizes come from the layer, not the packed weight, and merging cannot add into a packed
weight. The first merge therefore swaps in a float copy of the dequantized weight and adds the
delta there; unmerging the last adapter puts the untouched quantized layer back, so the round
trip is exact. While merged the model holds that float copy (which is what merging means here).
"""

from __future__ import annotations

import torch
from torch import nn

from swiftune.layers import WrapperLayer
from swiftune.tuners.lora.layer import LoraLinear

from .quantize import dequantize_weight, dequantized


class QLoraLinear(LoraLinear):
    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer, fan_in_fan_out=False)
        base = self.get_base_layer()
        self.in_features, self.out_features = base.in_features, base.out_features
        # The quantized layer while a float copy stands in for it (a list: not a registered submodule).
        self._quantized: list[nn.Module] = []

    def _holder(self) -> WrapperLayer:
        """The wrapper whose ``base_layer`` is the innermost layer (wrappers may be stacked)."""
        holder: WrapperLayer = self
        while isinstance(holder.base_layer, WrapperLayer):
            holder = holder.base_layer
        return holder

    def dense_weight(self) -> torch.Tensor:
        """The dequantized weight (out, in) while quantized; the float copy while merged."""
        return super().dense_weight() if self._quantized else dequantize_weight(self.get_base_layer())

    def merge(self, name: str) -> None:
        if name in self.merged_adapters:
            return
        if not self._quantized:
            holder = self._holder()
            quantized = holder.base_layer
            holder.base_layer = dequantized(quantized)
            self._quantized.append(quantized)
            # A GPT-2 Conv1D comes back as Conv1D, whose weight is (in, out).
            self.fan_in_fan_out = type(holder.base_layer).__name__ == "Conv1D"
        super().merge(name)

    def unmerge(self, name: str) -> None:
        if name not in self.merged_adapters:
            return
        super().unmerge(name)
        if not self.merged_adapters and self._quantized:
            self._holder().base_layer = self._quantized.pop()
            self.fan_in_fan_out = False
