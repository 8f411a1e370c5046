"""``QLoraConfig``: LoRA's fields plus how the base's linear layers are quantized.

The quantization field names follow transformers' ``BitsAndBytesConfig`` (``bnb_4bit_quant_type``,
``bnb_4bit_use_double_quant``, ``bnb_4bit_compute_dtype``, ``llm_int8_threshold``) so settings move
across. On disk the adapter is PEFT's LoRA format: PEFT ignores the extra quantization fields.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from swiftune.tuners.lora.config import LoraConfig


class QLoraConfig(LoraConfig):
    """LoRA over a bitsandbytes 4-bit (NF4 / FP4) or 8-bit (LLM.int8) base."""

    tuner: Literal["qlora"] = "qlora"
    # Not claimed for routing: a PEFT LoRA file without a "tuner" field loads as plain 'lora'.
    peft_type: ClassVar[str | None] = None

    bits: Literal[4, 8] = Field(4, description="4: Linear4bit (NF4 / FP4); 8: Linear8bitLt (LLM.int8)")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    bnb_4bit_use_double_quant: bool = Field(True, description="quantize the per-block scales too (QLoRA's recipe)")
    bnb_4bit_compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype of the 4-bit matmul; 'auto': the original weight's dtype"
    )
    llm_int8_threshold: float = Field(6.0, ge=0.0, description="8-bit outlier threshold (activations above it stay fp16)")
    quantize_modules: str | list[str] | None = Field(
        "all-linear",
        description="Linear / Conv1D layers to quantize, same syntax as target_modules; None: only the LoRA targets",
    )
    gradient_checkpointing: bool = Field(
        False, description="turn on the model's gradient checkpointing (non-reentrant) and input gradients"
    )

    def to_disk_dict(self) -> dict[str, Any]:
        data = super().to_disk_dict()
        data["peft_type"] = "LORA"  # PEFT reads the file as a plain LoRA adapter
        return data
