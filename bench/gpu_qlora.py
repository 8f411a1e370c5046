"""GPU suite, 3: a QLoRA training step, swiftune's ``qlora`` tuner against PEFT's QLoRA recipe.

Both start from the same saved bf16 model folder. PEFT's side is its documented recipe:
transformers loads the model quantized (``BitsAndBytesConfig``: NF4, double quantization, bf16
compute), ``prepare_model_for_kbit_training``, ``get_peft_model``. swiftune's side loads the
folder in bf16 and quantizes through the ``qlora`` tuner (the same bitsandbytes layers and
settings). Both LoRA pairs get identical weights; both train under bf16 autocast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .gpu import GpuSettings, batch_of, contender, measure, ratio_of, rows_of
from .common import causal_lm_loss
from .report import Section, Target, fmt

TITLE = "3. QLoRA training step (4-bit NF4 base)"


def peft_qlora(folder: Path, settings: GpuSettings) -> nn.Module:
    import peft
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=settings.dtype)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, dtype=settings.dtype,
                                                 device_map=settings.device)
    model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    s = settings.shape
    cfg = peft.LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return peft.get_peft_model(model, cfg).train()


def swiftune_qlora(folder: Path, settings: GpuSettings) -> nn.Module:
    from transformers import AutoModelForCausalLM

    from swiftune import Swift

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=settings.dtype, device_map=settings.device)
    s = settings.shape
    return Swift.prepare(model, {"tuner": "qlora", "r": s.r, "lora_alpha": s.alpha, "lora_dropout": 0.0,
                                 "bnb_4bit_compute_dtype": "bfloat16"}).train()


def copy_lora(ours: nn.Module, theirs: nn.Module) -> int:
    """Give swiftune's LoRA tensors PEFT's values (B made non-zero first, the same in both)."""
    torch.manual_seed(1)
    peft_params = dict(theirs.named_parameters())
    n = 0
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if not p.requires_grad:
                continue
            twin = peft_params["base_model.model." + name.removeprefix("model.")]
            if ".lora_B." in name:
                twin.normal_(std=0.02)
            p.copy_(twin)
            n += 1
    return n


def run(settings: GpuSettings, ctx: dict[str, Any]) -> list[Section]:
    from .gpu import _free
    from .common import fused_head

    folder = ctx["model_folder"]
    models = {"swiftune": swiftune_qlora(folder, settings), "peft": peft_qlora(folder, settings)}
    copied = copy_lora(models["swiftune"], models["peft"])
    batch = batch_of(settings)
    head = fused_head(models["swiftune"])
    with torch.no_grad(), settings.autocast():
        l_ours = causal_lm_loss(models["swiftune"], batch, head).item()
        l_theirs = causal_lm_loss(models["peft"], batch).item()
    contenders = {
        "swiftune qlora (sft's fused head loss)": contender(models["swiftune"], batch, settings, head),
        "peft qlora": contender(models["peft"], batch, settings),
        "swiftune qlora (model's own head + loss)": contender(models["swiftune"], batch, settings),
    }
    got = measure(contenders, settings, "qlora step")
    names = list(contenders)
    t, m = ratio_of(got, names[0], names[1])
    t_plain, m_plain = ratio_of(got, names[2], names[1])
    lines = rows_of(got, settings.tokens)
    lines += [f"swiftune / peft: time {t:.3f}x, peak memory {fmt(m)}x (sft's step); with the model's own loss: time "
              f"{t_plain:.3f}x, peak memory {fmt(m_plain)}x. Step-0 loss {l_ours:.5f} (swiftune) vs {l_theirs:.5f} "
              f"(PEFT), {copied} LoRA tensors made equal.", ""]
    targets = [Target("QLoRA step time <= 0.9x PEFT's QLoRA", f"{t:.3f}x", t <= 0.9)]
    intro = ("Same shapes and batch as measurement 1; every linear layer but `lm_head` in 4-bit NF4 with double "
             "quantization and bf16 compute, LoRA on all of them; the non-quantized parameters in fp32 on both "
             "sides (PEFT's `prepare_model_for_kbit_training`, swiftune's `qlora` does the same).")
    for c in contenders.values():
        c.optimizer.state.clear()
    del contenders, models
    _free(settings)
    return [Section("qlora", TITLE, intro, lines, [], targets)]
