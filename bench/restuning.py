"""Measurement 6: Res-Tuning against LoRA at sequence 512, batch 8: peak memory and step time.

Each runs in its own process (bench/child.py), two training steps; the step time is the CPU
time of the second (the first pays one-off allocation costs).
"""

from __future__ import annotations

from typing import Any

from .child import run_child
from .report import Chart, Section, Target, table

TITLE = "6. Res-Tuning vs LoRA (long batch)"


def run(settings: Any, ctx: dict[str, Any]) -> Section:
    seq, batch = settings.long_seq, settings.long_batch
    res = {n: run_child(n, settings, seq, batch, steps=2) for n in ("lora", "restuning")}
    failed = {n: r["error"] for n, r in res.items() if "error" in r}
    if failed:
        return Section("restuning", TITLE, "", [f"Not measured: {failed}", ""],
                       targets=[Target("Res-Tuning peak training memory <= 0.6x LoRA's", f"not available ({failed})", None)])
    rows = []
    for n, r in res.items():
        rows.append([n, f"{r['trainable']:,}", f"{r['rss_loaded'] / 2**20:.0f}", f"{r['peak'] / 2**20:.0f}",
                     f"{(r['peak'] - r['rss_loaded']) / 2**20:.0f}", f"{r['step_cpu'][-1]:.2f}"])
    lo, rt = res["lora"], res["restuning"]
    peak_ratio = rt["peak"] / lo["peak"]
    step_mem_ratio = (rt["peak"] - rt["rss_loaded"]) / max(1, lo["peak"] - lo["rss_loaded"])
    time_ratio = rt["step_cpu"][-1] / lo["step_cpu"][-1]
    lines = table(["tuner", "trainable", "RSS loaded (MiB)", "peak RSS (MiB)", "step peak - loaded (MiB)", "step CPU s"], rows)
    lines += [f"Res-Tuning / LoRA: peak RSS {peak_ratio:.3f}x, step memory above the loaded model {step_mem_ratio:.3f}x, "
              f"step time {time_ratio:.3f}x.", ""]
    chart = Chart("restuning_vs_lora", f"Res-Tuning / LoRA at batch {batch} x {seq}",
                  ["peak RSS", "step memory", "step time"], [peak_ratio, step_mem_ratio, time_ratio], "restuning / lora",
                  0.6, "target 0.6 (peak memory)")
    targets = [Target("Res-Tuning peak training memory <= 0.6x LoRA's",
                      f"{peak_ratio:.3f}x peak RSS ({step_mem_ratio:.3f}x of the step's own memory)", peak_ratio <= 0.6)]
    intro = f"Batch {batch} x {seq} tokens, fp32, default `restuning` config, LoRA r={settings.shape.r} on all linear layers."
    return Section("restuning", TITLE, intro, lines, [chart], targets)
