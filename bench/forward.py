"""Measurement 2: forward overhead of an unmerged LoRA adapter over the base model; merged == base.

Inference forward passes (``eval()``, ``no_grad``, fp32) of the bare base model, swiftune and PEFT
with the same unmerged adapter, and swiftune after ``merge_and_unload``, alternating in one process.
The merged model must be the base architecture again (no wrapper left) and give the unmerged
adapter's logits as closely as PEFT's own merge does (fp32 rounding through 30 layers: the GEMM
library's rounding varies between runs, so PEFT's merge, computed in the same run, is the yardstick).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .common import Settings, alternate, base_model, input_ids, lora_pair, ratio
from .report import Chart, Section, Target, fmt, table

TITLE = "2. Unmerged LoRA forward overhead; merged model"


def forward_call(model: torch.nn.Module, ids: torch.Tensor):
    def call() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    return call


def run(settings: Settings, ctx: dict[str, Any]) -> Section:
    shape = settings.shape
    base = base_model(shape).eval()
    pair = lora_pair(shape, base)
    ids = input_ids(shape)
    ours, theirs = pair["swiftune"].eval(), pair["peft"].eval()
    with torch.no_grad():
        unmerged_logits = ours(input_ids=ids).logits
        peft_logits = theirs(input_ids=ids).logits
    merged = copy.deepcopy(ours).merge_and_unload().eval()
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits
        peft_merged_logits = copy.deepcopy(theirs).merge_and_unload().eval()(input_ids=ids).logits
    leftovers = [n for n, m in merged.named_modules() if "lora" in type(m).__name__.lower()]
    same_structure = not leftovers and [type(m) for m in merged.modules()] == [type(m) for m in base.modules()]
    merge_diff = (merged_logits - unmerged_logits).abs().max().item()
    # fp32 merge error grows with depth and logit size: judged relative to the largest logit.
    top = unmerged_logits.abs().max().item()
    merge_rel = merge_diff / top
    peft_merge_rel = (peft_merged_logits - peft_logits).abs().max().item() / top
    merged_vs_peft = (merged_logits - peft_merged_logits).abs().max().item()
    peft_diff = (peft_logits - unmerged_logits).abs().max().item()

    calls = {
        "base": forward_call(base, ids),
        "swiftune unmerged": forward_call(ours, ids),
        "peft unmerged": forward_call(theirs, ids),
        "swiftune merged": forward_call(merged, ids),
    }
    t = alternate(calls, settings.rounds, settings.warmup, "forward")
    rows = []
    for name, x in t.items():
        r = ratio(t, name, "base")
        rows.append([name, fmt(x.cpu_min), fmt(x.cpu_median), fmt(r[0]), fmt(r[1]), fmt(r[2])])
    lines = table(["contender", "CPU s min", "CPU s median", "/ base (min)", "/ base (median)", "/ base (paired)"], rows)
    lines += [
        f"Merged model: {'the base architecture again (no LoRA module left)' if same_structure else f'NOT the base architecture: {leftovers[:3]}'}; "
        f"max |logits(merged) - logits(unmerged)| = {merge_diff:.1e} ({merge_rel:.1e} of the largest logit; PEFT's own "
        f"merge: {peft_merge_rel:.1e}); swiftune vs PEFT merged logits: {merged_vs_peft:.1e}; unmerged: {peft_diff:.1e}.",
        "",
    ]
    over = ratio(t, "swiftune unmerged", "base")
    over_peft = ratio(t, "peft unmerged", "base")
    merged_r = ratio(t, "swiftune merged", "base")
    targets = [
        Target("unmerged forward overhead <= 10% over the base",
               f"{(over[1] - 1) * 100:+.1f}% median, {(over[0] - 1) * 100:+.1f}% min (PEFT {(over_peft[1] - 1) * 100:+.1f}%)",
               over[1] <= 1.10),
        Target("merged == base", f"same modules: {same_structure}, logits diff {merge_rel:.1e} relative (PEFT's merge "
               f"{peft_merge_rel:.1e}), time {merged_r[1]:.3f}x base",
               same_structure and merge_rel <= max(1e-4, 1.01 * peft_merge_rel) and merged_r[1] <= 1.05),
    ]
    chart = Chart("lora_forward", "Forward pass relative to the base model (median)", list(t),
                  [ratio(t, n, "base")[1] for n in t], "x base", 1.10, "target: unmerged <= 1.10")
    intro = f"Batch {shape.batch} x {shape.seq} tokens, fp32, {settings.rounds} rounds after {settings.warmup} warm-up."
    return Section("forward", TITLE, intro, lines, [chart], targets)
