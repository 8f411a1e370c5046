"""Swapping float linear layers for bitsandbytes ones and back, and k-bit training preparation.

Module replacement only: a float ``nn.Linear`` (or GPT-2 ``Conv1D``, transposed as transformers
does) becomes a new ``bnb.nn.Linear4bit`` / ``bnb.nn.Linear8bitLt``; ``dequantized`` builds the
float layer back (merging). The original float layer is never modified. bitsandbytes is imported
only when something is quantized, so the plugin registers without it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from swiftune.errors import ConfigError
from swiftune.module_utils import Site, set_module

if TYPE_CHECKING:  # pragma: no cover
    from .config import QLoraConfig

#: Attribute set on the bnb layers swiftune creates: what float layer they replaced.
SOURCE_ATTR = "swiftune_source"
_HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Source:
    """The float layer a quantized one stands for: GPT-2 ``Conv1D`` or ``nn.Linear``, and its dtype."""

    conv1d: bool
    dtype: torch.dtype


def bnb() -> Any:
    try:
        import bitsandbytes
    except ImportError as exc:  # pragma: no cover - bitsandbytes is in the dev extra
        raise ImportError("the 'qlora' tuner needs bitsandbytes: pip install 'swiftune[qlora]'") from exc
    return bitsandbytes


def is_quantized(module: nn.Module) -> bool:
    """A bitsandbytes 4-bit or 8-bit linear layer (without importing bitsandbytes if nothing could be one)."""
    lib = sys.modules.get("bitsandbytes")
    nn_mod = getattr(lib, "nn", None)
    if nn_mod is None:
        return False
    return isinstance(module, (nn_mod.Linear4bit, nn_mod.Linear8bitLt))


def bits_of(layer: nn.Module) -> int:
    return 4 if isinstance(layer, bnb().nn.Linear4bit) else 8


# -- float -> quantized ------------------------------------------------------------------------------
def quantize_linear(layer: nn.Module, cfg: QLoraConfig) -> nn.Module:
    """A new bnb layer holding ``layer``'s weight quantized as ``cfg`` says; bias shared, frozen."""
    lib = bnb()
    conv1d = type(layer).__name__ == "Conv1D"
    weight = layer.weight.detach()
    weight = (weight.T if conv1d else weight).contiguous()
    out_f, in_f = weight.shape
    if cfg.bits == 4:
        compute = weight.dtype if cfg.bnb_4bit_compute_dtype == "auto" else getattr(torch, cfg.bnb_4bit_compute_dtype)
        q = lib.nn.Linear4bit(
            in_f, out_f, bias=False, compute_dtype=compute, compress_statistics=cfg.bnb_4bit_use_double_quant,
            quant_type=cfg.bnb_4bit_quant_type, device="meta",
        )  # fmt: skip
        q.weight = lib.nn.Params4bit(
            weight, requires_grad=False, compress_statistics=cfg.bnb_4bit_use_double_quant,
            quant_type=cfg.bnb_4bit_quant_type, module=q,
        ).to(weight.device)  # fmt: skip  (moving to a device is what quantizes in bitsandbytes)
        standard_layout(q)
    else:
        q = lib.nn.Linear8bitLt(
            in_f, out_f, bias=False, has_fp16_weights=False, threshold=cfg.llm_int8_threshold, device="meta"
        )
        q.weight = lib.nn.Int8Params(weight.cpu(), requires_grad=False, has_fp16_weights=False).to(weight.device)
    bias = getattr(layer, "bias", None)
    if isinstance(bias, nn.Parameter):
        q.bias = bias
    setattr(q, SOURCE_ATTR, Source(conv1d, weight.dtype))
    return q


def standard_layout(layer: nn.Module) -> None:
    """Keep a Linear4bit in bitsandbytes' portable layout.

    On CPUs with AVX512-BF16, bitsandbytes repacks a 4-bit weight in place on the first eval-mode,
    no-grad forward (an inference speed-up): the block scales drop to bf16, in_features below 64
    crash, and the weight changes under the adapter. Layers swiftune manages stay in the portable
    layout (undoing a repack that already happened), so forward, merge and save agree exactly.
    """
    if not isinstance(layer, bnb().nn.Linear4bit):
        return
    layer.support_avx512bf16_for_cpu = False
    state = layer.weight.quant_state
    if getattr(state, "packing_format_for_cpu", False):
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

        layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(layer.weight.data, state)


def check_compatible(layer: nn.Module, cfg: QLoraConfig, name: str, where: str) -> None:
    """An already-quantized layer must match the config, or a saved adapter would describe another base."""
    bits = bits_of(layer)
    if bits != cfg.bits:
        raise ConfigError(f"{where}: bits={cfg.bits}, but '{name}' is already quantized to {bits} bits")
    if bits == 8:
        return
    state = layer.weight.quant_state
    if state.quant_type != cfg.bnb_4bit_quant_type:
        raise ConfigError(
            f"{where}: bnb_4bit_quant_type='{cfg.bnb_4bit_quant_type}', but '{name}' is already quantized "
            f"as '{state.quant_type}'"
        )
    nested = bool(getattr(state, "original_nested", state.nested))
    if nested != cfg.bnb_4bit_use_double_quant:
        raise ConfigError(
            f"{where}: bnb_4bit_use_double_quant={cfg.bnb_4bit_use_double_quant}, but '{name}' is already "
            f"quantized with double quantization {'on' if nested else 'off'}"
        )


def quantize_sites(model: nn.Module, sites: list[Site], cfg: QLoraConfig, where: str) -> list[str]:
    """Quantize the plain float linear layers among ``sites``; returns the names it quantized.

    Layers already quantized (a second adapter, or a model loaded with ``BitsAndBytesConfig``) are
    checked against ``cfg`` and kept. A float layer already wrapped by another adapter keeps its
    float weight: quantizing it would change that adapter's base.
    """
    done = []
    dtype = _model_dtype(model)
    for site in sites:
        if is_quantized(site.base):
            check_compatible(site.base, cfg, site.name, where)
            standard_layout(site.base)
            if not hasattr(site.base, SOURCE_ATTR):
                setattr(site.base, SOURCE_ATTR, Source(False, _float_dtype(site.base, dtype)))
        elif site.module is site.base and is_float_linear(site.base):
            set_module(model, site.path, quantize_linear(site.base, cfg))
            done.append(site.name)
    return done


def is_float_linear(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    linear = isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
    return linear and not is_quantized(module) and isinstance(weight, torch.Tensor) and weight.is_floating_point()


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _float_dtype(layer: nn.Module, fallback: torch.dtype) -> torch.dtype:
    if bits_of(layer) == 4:
        state = layer.weight.quant_state
        return getattr(state, "original_dtype", state.dtype)
    return fallback


# -- quantized -> float ------------------------------------------------------------------------------
def dequantize_weight(layer: nn.Module) -> torch.Tensor:
    """The float weight (out, in) that ``layer``'s forward multiplies by."""
    lib = bnb()
    if isinstance(layer, lib.nn.Linear4bit):
        standard_layout(layer)
        return lib.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    scb = layer.weight.SCB if layer.weight.SCB is not None else layer.state.SCB
    return lib.functional.int8_vectorwise_dequant(layer.weight.data, scb)


def dequantized(layer: nn.Module) -> nn.Module:
    """A float ``nn.Linear`` (or ``Conv1D`` where one was quantized) equal to ``layer``'s dequantized weight."""
    source: Source = getattr(layer, SOURCE_ATTR, None) or Source(False, _float_dtype(layer, torch.float32))
    weight = dequantize_weight(layer).to(source.dtype)
    out_f, in_f = weight.shape
    with torch.device("meta"):
        if source.conv1d:
            from transformers.pytorch_utils import Conv1D

            new: nn.Module = Conv1D(out_f, in_f)
        else:
            new = nn.Linear(in_f, out_f, bias=layer.bias is not None)
    new.weight = nn.Parameter(weight.T.contiguous() if source.conv1d else weight, requires_grad=False)
    if layer.bias is not None:
        new.bias = nn.Parameter(layer.bias.detach().to(source.dtype), requires_grad=False)
    return new


def dequantize_model(model: nn.Module) -> int:
    """Replace every bnb linear layer of ``model`` by its float equivalent; returns how many."""
    found = [(n, m) for n, m in model.named_modules() if is_quantized(m)]
    for name, module in found:
        set_module(model, name, dequantized(module))
    return len(found)


def storage_bytes(layer: nn.Module) -> int:
    """Bytes of a bnb layer's weight including its quantization state (scales, nested scales, code)."""
    lib = bnb()
    total = layer.weight.numel() * layer.weight.element_size()
    if isinstance(layer, lib.nn.Linear4bit):
        for v in layer.weight.quant_state.as_dict(packed=True).values():
            if isinstance(v, torch.Tensor):
                total += v.numel() * v.element_size()
    else:
        scb = layer.weight.SCB if layer.weight.SCB is not None else layer.state.SCB
        total += scb.numel() * scb.element_size()
    return total


# -- k-bit training ----------------------------------------------------------------------------------
def prepare_kbit_training(model: nn.Module, gradient_checkpointing: bool, where: str) -> None:
    """Half-precision float parameters in fp32 and gradient checkpointing on request (SwiftModel froze the base).

    Every float parameter that is not quantized (norms, embeddings, head) is upcast from fp16/bf16,
    as PEFT's ``prepare_model_for_kbit_training`` does: norms alone in fp32 would make the hidden
    states fp32 after the first block, which a half-precision head then refuses.
    """
    for module in model.modules():
        if is_quantized(module):
            continue
        for p in module.parameters(recurse=False):
            if p.dtype in _HALF:
                p.data = p.data.float()
    if gradient_checkpointing:
        enable = getattr(model, "gradient_checkpointing_enable", None)
        if enable is None:
            raise ConfigError(f"{where}: gradient_checkpointing=True needs a transformers model, got {type(model).__name__}")
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # Checkpointed blocks need an input that requires grad when the embeddings are frozen.
        model.enable_input_require_grads()
