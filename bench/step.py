"""Measurement 1: one LoRA training step (forward, backward, AdamW), swiftune vs PEFT.

Both libraries train r=8 LoRA on all linear layers of copies of one base model with identical
LoRA weights; before timing, the step-0 loss and LoRA gradients must agree, so the timings
measure the same work. The contenders alternate in one process: each library in fp32 and under
bf16 CPU autocast (the best precision of both on a CPU with native bf16; swiftune's default there).
swiftune's contenders run ``swiftune sft``'s step: its loss with the LM head fused in
(``HeadLoss``, the same loss and gradients, checked against PEFT's at step 0). "swiftune bf16" is
what ``swiftune sft`` trains under bf16: the frozen Linear weights stored in bf16 once
(``cast_frozen_linears``: the values autocast would compute at every step, so the loss and
gradients are bit-identical, checked); "swiftune bf16, fp32 weights" is autocast alone; "swiftune
bf16, model's loss" the model's own head and loss; "swiftune bf16, compiled" adds `swiftune sft
--compile` (each decoder block compiled in place, no KV cache; its compile time falls in the
warm-up round).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .common import (Settings, alternate, base_model, causal_lm_loss, fused_head, input_ids, lora_pair, matmul_params,
                     model_source, ratio, train_step)
from .report import Chart, Section, Target, fmt, table

TITLE = "1. LoRA training step"


def lora_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """LoRA gradients keyed by the path below the decoder layers (the same in both libraries)."""
    return {n[n.index("layers.") :]: p.grad for n, p in model.named_parameters() if p.grad is not None}


def loss_and_grads(model: torch.nn.Module, ids: torch.Tensor, autocast: torch.dtype | None = None,
                   head_loss: Any = None) -> tuple[float, dict[str, torch.Tensor]]:
    """One forward + backward (labels = ids): the loss and the LoRA gradients, which are then cleared."""
    with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        loss = causal_lm_loss(model, {"input_ids": ids, "labels": ids}, head_loss)
    loss.backward()
    grads = lora_grads(model)
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def check_same_work(models: dict[str, torch.nn.Module], ids: torch.Tensor, head_loss: Any) -> dict[str, float]:
    """Step-0 loss and LoRA gradients of swiftune (sft's loss: ``head_loss``) must match PEFT's
    (fp32); returns the differences."""
    (l1, g1), (l2, g2) = loss_and_grads(models["swiftune"], ids, None, head_loss), loss_and_grads(models["peft"], ids)
    if g1.keys() != g2.keys():
        raise RuntimeError(f"LoRA gradients differ in names: {sorted(g1.keys() ^ g2.keys())[:4]}")
    scale = max(g.abs().max().item() for g in g2.values())
    diffs = {"loss": abs(l1 - l2), "grad (max abs / max |grad|)": max((g1[k] - g2[k]).abs().max().item() for k in g1) / scale}
    if not (diffs["loss"] <= 1e-4 * max(1.0, abs(l2)) and diffs["grad (max abs / max |grad|)"] <= 1e-3):
        raise RuntimeError(f"swiftune and PEFT disagree at step 0: {diffs}")
    return diffs


def lean_bf16(model: torch.nn.Module, ids: torch.Tensor) -> torch.nn.Module:
    """A copy with the frozen Linear weights in bf16, checked to give bit-identical bf16 results."""
    from swiftune import cast_frozen_linears

    lean = copy.deepcopy(model)
    if not cast_frozen_linears(lean, torch.bfloat16):
        raise RuntimeError("no frozen Linear layer to store in bf16")
    (l1, g1), (l2, g2) = loss_and_grads(model, ids, torch.bfloat16), loss_and_grads(lean, ids, torch.bfloat16)
    if l1 != l2 or any(not torch.equal(g1[k], g2[k]) for k in g1):
        raise RuntimeError("bf16-stored frozen weights changed the bf16 loss or gradients")
    return lean


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """A copy with its decoder blocks compiled in place, as ``swiftune sft --compile`` does."""
    from swiftune.recipes.regional_compile import compile_blocks

    twin = copy.deepcopy(model)
    compile_blocks(twin.get_base_model())
    return twin


def run(settings: Settings, ctx: dict[str, Any]) -> Section:
    shape = settings.shape
    models = lora_pair(shape, base_model(shape))
    ids = input_ids(shape)
    lean = lean_bf16(models["swiftune"], ids)
    lean_compiled = compiled(lean)
    heads = {name: fused_head(m) for name, m in [("fp32", models["swiftune"]), ("bf16", lean), ("compiled", lean_compiled)]}
    diffs = check_same_work(models, ids, heads["fp32"])
    calls = {
        "swiftune fp32": train_step(models["swiftune"], ids, head_loss=heads["fp32"]),
        "peft fp32": train_step(models["peft"], ids),
        "swiftune bf16": train_step(lean, ids, torch.bfloat16, head_loss=heads["bf16"]),
        "peft bf16": train_step(models["peft"], ids, torch.bfloat16),
        "swiftune bf16, fp32 weights": train_step(models["swiftune"], ids, torch.bfloat16, head_loss=heads["fp32"]),
        "swiftune bf16, model's loss": train_step(lean, ids, torch.bfloat16),
        "swiftune bf16, compiled": train_step(lean_compiled, ids, torch.bfloat16, head_loss=heads["compiled"],
                                              use_cache=False),
    }
    t = alternate(calls, settings.rounds, settings.warmup, "step")
    ctx["step"] = {"tokens": settings.tokens, "N": matmul_params(models["peft"]), "timings": t}

    rows = [[name, fmt(x.cpu_min), fmt(x.cpu_median), fmt(x.wall_min), fmt(x.wall_median),
             f"{settings.tokens / x.cpu_min:.0f}"] for name, x in t.items()]
    lines = table(["contender", "CPU s min", "CPU s median", "wall s min", "wall s median", "tokens / CPU s (best)"], rows)
    pairs = [("swiftune fp32", "peft fp32"), ("swiftune bf16", "peft bf16"), ("swiftune bf16", "peft fp32"),
             ("swiftune bf16, fp32 weights", "peft bf16"), ("swiftune bf16, model's loss", "peft bf16"),
             ("swiftune bf16, compiled", "peft bf16"),
             ("peft bf16", "peft fp32")]
    ratios = {p: ratio(t, *p) for p in pairs}
    lines += table(["ratio (CPU time)", "min", "median", "paired"],
                   [[f"{a} / {b}", *(fmt(v) for v in ratios[(a, b)])] for a, b in pairs])
    lines += [f"Step-0 agreement (fp32; swiftune through sft's fused head loss): |loss diff| {diffs['loss']:.1e}, LoRA gradients max abs diff / max |grad| "
              f"{diffs['grad (max abs / max |grad|)']:.1e}. swiftune bf16 with bf16-stored frozen weights vs "
              "autocast alone: bit-identical loss and LoRA gradients.", ""]
    eq, best = ratios[("swiftune fp32", "peft fp32")], ratios[("swiftune bf16", "peft fp32")]
    eq_bf16 = ratios[("swiftune bf16", "peft bf16")]
    comp = ratios[("swiftune bf16, compiled", "peft bf16")]
    targets = [
        Target("LoRA step time <= 0.85x PEFT, equal precision (fp32)", f"{eq[0]:.3f}x (min), {eq[1]:.3f}x (median)",
               eq[1] <= 0.85),
        Target("LoRA step time <= 0.85x PEFT, equal precision (bf16 autocast)",
               f"{eq_bf16[0]:.3f}x (min), {eq_bf16[1]:.3f}x (median)", eq_bf16[1] <= 0.85),
        Target("LoRA step time <= 0.85x PEFT, equal precision (bf16, opt-in `--compile`; compile time excluded)",
               f"{comp[0]:.3f}x (min), {comp[1]:.3f}x (median)", comp[1] <= 0.85),
        Target("swiftune default precision (bf16 autocast) <= 0.6x PEFT fp32",
               f"{best[0]:.3f}x (min), {best[1]:.3f}x (median)", best[1] <= 0.6),
    ]
    chart = Chart("lora_step", "LoRA training step, CPU seconds (min)", list(t), [x.cpu_min for x in t.values()],
                  "CPU s / step")
    intro = (
        f"Model: {model_source()}; {shape.describe()}; batch {shape.batch} x {shape.seq} tokens, SDPA attention. "
        f"LoRA r={shape.r}, alpha={shape.alpha}, dropout 0 on all linear layers but `lm_head` "
        f"(`target_modules=\"all-linear\"` in both). {settings.warmup} warm-up and {settings.rounds} timed rounds "
        "per contender. bf16 = `torch.autocast('cpu', torch.bfloat16)` around the forward, fp32 weights."
    )
    return Section("step", TITLE, intro, lines, [chart], targets)
