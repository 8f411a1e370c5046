"""Measurement 10: a DPO training step, swiftune rlhf vs TRL + PEFT with a separate reference model.

Each contender runs in its own process (``bench/dpo_child.py``): the same model, rows, LoRA
settings (r, alpha of measurement 1; all linear layers), batch and fp32. swiftune's reference is the
model with its adapter disabled, its log-probabilities computed in one pass before training (part
of its set-up); TRL + PEFT keeps a copy of the base as the reference and runs it at every step.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from .report import Chart, Section, Target, fmt, table

TITLE = "10. DPO: swiftune rlhf vs TRL + PEFT with a reference model"
CONTENDERS = ["swiftune", "trl+peft"]


def run_child(contender: str, settings: Any, steps: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.dpo_child", "--contender", contender, "--steps", str(steps),
           "--threads", str(settings.threads)]
    if settings.quick:
        cmd += ["--quick", "--batch", "2", "--prompt-words", "8", "--answer-words", "16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{contender}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(settings: Any, ctx: dict[str, Any]) -> Section:
    steps = 2 if settings.quick else max(3, settings.rounds)
    results = {c: run_child(c, settings, steps) for c in CONTENDERS}
    mine, theirs = results["swiftune"], results["trl+peft"]
    rows = []
    for name, r in results.items():
        rows.append([name, fmt(min(r["step_cpu"])), fmt(statistics.median(r["step_cpu"])),
                     fmt(statistics.median(r["step_wall"])), fmt(r["setup_cpu"]), f"{r['peak_above_imports'] / 2**20:.0f}"])
    lines = table(["contender", "step CPU s (min)", "step CPU s (median)", "step wall s (median)",
                   "set-up CPU s (model, data, reference pass)", "peak RSS above imports (MiB)"], rows)
    time_ratio = statistics.median(mine["step_cpu"]) / statistics.median(theirs["step_cpu"])
    mem_ratio = mine["peak_above_imports"] / theirs["peak_above_imports"]
    epoch_steps = max(1, len(mine["step_cpu"]))
    lines += [
        f"Ratios swiftune / TRL + PEFT: step time {time_ratio:.3f}x (median CPU s), peak memory {mem_ratio:.3f}x. "
        f"Tokens per step: {mine['tokens_per_step']} (chosen and rejected). Model: {mine['source']}.",
        "swiftune's step has no reference forward (its reference log-probabilities were computed once, before "
        "training, with the adapter disabled); that pass is in its set-up column and costs about one reference "
        f"forward per row, once, where TRL + PEFT pays one per row in every epoch ({epoch_steps} timed steps here).",
        "",
    ]
    targets = [
        Target("DPO peak memory <= 0.7x TRL + PEFT with a reference model", f"{mem_ratio:.3f}x", mem_ratio <= 0.7),
        Target("DPO step time <= 0.95x TRL + PEFT with a reference model", f"{time_ratio:.3f}x (median)", time_ratio <= 0.95),
    ]
    chart = Chart("dpo_step", "DPO step, CPU seconds (median)", CONTENDERS,
                  [statistics.median(results[c]["step_cpu"]) for c in CONTENDERS], "CPU s / step")
    intro = ("One process per contender; LoRA on all linear layers, fp32, batch of preference pairs as in "
             "`bench/dpo_child.py`; the first step is a warm-up and not timed.")
    return Section("dpo", TITLE, intro, lines, [chart], targets)
