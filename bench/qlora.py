"""Measurement 5: QLoRA's loaded bytes and training-step memory against the float model.

Reads the ``qlora`` and ``lora`` children of measurement 4 (run by it, or here if it was skipped):
bytes of the targeted linear weights as loaded (4-bit data plus quantization state) against the
same weights in fp32, the whole model's bytes, and the peak RSS of a training step.
"""

from __future__ import annotations

from typing import Any

from .child import run_child
from .report import Chart, Section, Target, table

TITLE = "5. QLoRA: loaded bytes and training memory"


def run(settings: Any, ctx: dict[str, Any]) -> Section:
    shape = settings.shape
    got = ctx.get("memory") or {}
    res = {n: got.get(n) or run_child(n, settings, shape.seq, shape.batch) for n in ("lora", "qlora")}
    if "error" in res["qlora"] or "error" in res["lora"]:
        why = res["qlora"].get("error") or res["lora"].get("error")
        return Section("qlora", TITLE, "", [f"Not measured: {why}", ""],
                       targets=[Target("QLoRA linear weights <= 0.35x fp32", f"not available ({why})", None)])
    q, f = res["qlora"], res["lora"]
    lin_ratio = q["linear_bytes"] / q["linear_fp32_bytes"]
    rows = [
        ["targeted linear weights", f"{f['linear_bytes'] / 2**20:.1f}", f"{q['linear_bytes'] / 2**20:.1f}", f"{lin_ratio:.3f}"],
        ["all parameters and buffers", f"{f['model_bytes'] / 2**20:.1f}", f"{q['model_bytes'] / 2**20:.1f}",
         f"{q['model_bytes'] / f['model_bytes']:.3f}"],
        ["process RSS after loading", f"{f['rss_loaded'] / 2**20:.0f}", f"{q['rss_loaded'] / 2**20:.0f}",
         f"{q['rss_loaded'] / f['rss_loaded']:.3f}"],
        ["peak RSS of a training step", f"{f['peak'] / 2**20:.0f}", f"{q['peak'] / 2**20:.0f}", f"{q['peak'] / f['peak']:.3f}"],
        ["training step, CPU s", f"{f['step_cpu'][0]:.2f}", f"{q['step_cpu'][0]:.2f}", f"{q['step_cpu'][0] / f['step_cpu'][0]:.2f}"],
    ]
    lines = table(["MiB", "lora on the fp32 model", "qlora (4-bit NF4, double quant)", "qlora / fp32"], rows)
    lines += ["The 4-bit bytes include the quantization state (absmax, nested absmax, code). The embedding "
              "(tied to `lm_head`) and the norms stay in float in both, which is why the whole model shrinks less "
              "than its linear layers. Peak RSS includes the process's libraries.", ""]
    chart = Chart("qlora_bytes", "Bytes: QLoRA over fp32 (lower is better)", ["linear weights", "whole model", "step peak RSS"],
                  [lin_ratio, q["model_bytes"] / f["model_bytes"], q["peak"] / f["peak"]], "qlora / fp32", 0.35,
                  "target 0.35 (linear weights)")
    targets = [Target("QLoRA linear weights <= 0.35x fp32", f"{lin_ratio:.3f}x", lin_ratio <= 0.35)]
    return Section("qlora", TITLE, f"Same model and batch as measurement 4 ({shape.batch} x {shape.seq}).", lines,
                   [chart], targets)
