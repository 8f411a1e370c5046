"""QLoRA: LoRA over a bitsandbytes 4-bit / 8-bit base, registered like any other plugin.

bitsandbytes is imported only when a model is quantized, so this plugin registers without it.
"""

import swiftune

from .config import QLoraConfig
from .layer import QLoraLinear
from .quantize import dequantize_model, dequantized, quantize_linear, storage_bytes
from .tuner import QLora

__all__ = ["QLora", "QLoraConfig", "QLoraLinear", "dequantize_model", "dequantized", "quantize_linear", "storage_bytes"]


@swiftune.hookimpl
def register_tuners(register):
    register(QLora)
