"""Measurement 4: peak memory of one training step for every built-in tuner, and trainable counts.

Each tuner trains one step (forward, backward, AdamW; fp32) in its own process (bench/child.py),
on the same model and batch as measurement 1. A tuner that is not registered, or that fails on
this model, is listed with the reason instead of a figure.
"""

from __future__ import annotations

from typing import Any

from .child import PEFT_LORA, SFT_LOSS, run_child
from .report import Chart, Section, table

TITLE = "4. Peak memory of a training step, per tuner"
#: Every built-in tuner of DESIGN.md, plus full fine-tuning.
TUNERS = ["lora", "qlora", "adapter", "prefix", "prompt", "side", "restuning", "part", "bitfit", "full", "peft"]


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def run(settings: Any, ctx: dict[str, Any]) -> Section:
    shape = settings.shape
    results: dict[str, dict[str, Any]] = {}
    for name in [*TUNERS, "lora" + SFT_LOSS, "full" + SFT_LOSS, PEFT_LORA]:
        results[name] = run_child(name, settings, shape.seq, shape.batch)
    ctx["memory"] = results
    rows, labels, values = [], [], []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "-", "-", "-", "-", "-", r["error"]])
            continue
        step_cost = r["peak"] - r["rss_loaded"]
        rows.append([name, f"{r['trainable']:,}", f"{100 * r['trainable'] / max(1, r['total']):.3f}%",
                     mib(r["rss_loaded"]), mib(r["peak"]), mib(step_cost), f"step {r['step_cpu'][0]:.2f} CPU s"])
        labels.append(name)
        values.append(step_cost / 2**20)
    lines = table(["tuner", "trainable params", "trainable %", "RSS loaded (MiB)", "peak RSS in step (MiB)",
                   "step peak - loaded (MiB)", "note"], rows, "lrrrrrl")
    lines += [
        "RSS loaded: the process's resident memory after the model was built and the tuner applied (torch, "
        "transformers and the model included); peak: the kernel's high-water mark (`VmHWM`) over one training "
        "step, reset after loading. `full` is full fine-tuning (AdamW states for every weight); "
        f"`{PEFT_LORA}` is PEFT's LoRA with the same settings as swiftune's `lora`; every other row computes the "
        f"model's own loss, and the rows `...{SFT_LOSS}` train through `swiftune sft`'s loss (the LM head fused "
        "into it: no full logits tensor).",
        "",
    ]
    chart = Chart("memory_per_tuner", "Memory of one training step above the loaded model (MiB)", labels, values, "MiB")
    intro = f"Batch {shape.batch} x {shape.seq} tokens, fp32 model, one step per process."
    return Section("memory", TITLE, intro, lines, [chart], [])
