"""Measurement 8: training efficiency against the machine's own matmul limit.

achieved FLOP/s = training tokens per CPU second x FLOPs per token, with 4N for a frozen base (LoRA:
forward 2N, input gradients 2N; the LoRA matrices are not counted) and N the matmul parameters of
the base (lm_head included). The limit is ``torch.mm`` of the model's own MLP shape, timed in the
same process and with the same clock (CPU time), in fp32 and bf16. Attention's score and value
products are not in N, as usual, so the figure is slightly pessimistic.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .common import Settings
from .report import Chart, Section, Target, table

TITLE = "8. Efficiency against the measured matmul limit"


def matmul_flops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> float:
    """Best FLOP/s (per CPU second) of ``(m, k) @ (k, n)`` over runs of about ``seconds`` each."""
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(5):
        reps, c0 = 0, time.process_time()
        while True:
            torch.mm(a, b, out=out)
            reps += 1
            used = time.process_time() - c0
            if used >= seconds / 5:
                break
        best = max(best, 2 * m * k * n * reps / used)
    return best


def run(settings: Settings, ctx: dict[str, Any]) -> Section:
    step = ctx.get("step")
    shape = settings.shape
    secs = 0.5 if settings.quick else 4.0
    m = settings.tokens
    limits = {
        "fp32": matmul_flops(m, shape.hidden, shape.intermediate, torch.float32, secs),
        "bf16": matmul_flops(m, shape.hidden, shape.intermediate, torch.bfloat16, secs),
    }
    lines = table(["matmul", "shape", "GFLOP/s per CPU s"],
                  [[d, f"({m} x {shape.hidden}) @ ({shape.hidden} x {shape.intermediate})", f"{v / 1e9:.1f}"]
                   for d, v in limits.items()])
    if step is None:
        return Section("efficiency", TITLE, "", lines + ["Training figures missing (measurement 1 did not run).", ""],
                       targets=[Target("training >= 60% of the measured matmul FLOP/s", "not measured", None)])
    n, tokens, t = step["N"], step["tokens"], step["timings"]
    rows, labels, values, targets = [], [], [], []
    for name, x in t.items():
        prec = "bf16" if "bf16" in name else "fp32"
        achieved = tokens / x.cpu_min * 4 * n
        eff = achieved / limits[prec]
        rows.append([name, f"{tokens / x.cpu_min:.0f}", f"{achieved / 1e9:.1f}", prec, f"{100 * eff:.1f}%"])
        labels.append(name)
        values.append(100 * eff)
        if name in ("swiftune fp32", "swiftune bf16"):  # what swiftune trains with at each precision
            targets.append(Target(f"training >= 60% of matmul FLOP/s ({name})", f"{100 * eff:.1f}%", eff >= 0.6))
    lines += table(["training step", "tokens / CPU s", "achieved GFLOP/s (4N)", "limit used", "efficiency"], rows)
    lines += [f"N = {n:,} matmul parameters; {tokens} tokens per step (measurement 1's best rounds).", ""]
    chart = Chart("efficiency", "Training FLOP/s as % of the measured matmul FLOP/s", labels, values, "%", 60.0, "target 60%")
    return Section("efficiency", TITLE, "", lines, [chart], targets)
