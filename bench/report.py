"""The report writer: sections of tables, notes and bar charts -> docs/benchmarks.md + PNGs."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Chart:
    """A bar chart; ``reference`` draws a dashed line (the target, or 1.0 = parity)."""

    name: str
    title: str
    labels: list[str]
    values: list[float]
    ylabel: str
    reference: float | None = None
    reference_label: str = ""


@dataclass
class Target:
    """One performance target (speed or memory against PEFT) and the figure measured for it (``met`` None: not measured)."""

    what: str
    figure: str
    met: bool | None


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    lines: list[str] = field(default_factory=list)  # markdown tables and notes, in order
    charts: list[Chart] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0


def table(headers: list[str], rows: list[list[object]], align: str | None = None) -> list[str]:
    """A markdown table; ``align``: one char per column, 'l' or 'r' (default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


# -- machine -----------------------------------------------------------------------------------------
def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine() -> str:
    import peft
    import torch
    import transformers

    from swiftune.recipes.runtime import cpu_has_fast_bf16

    flags = cpu_flags()
    bf16 = ", ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "none"
    mem = memory_gib()
    return (
        f"{cpu_name()}, {os.cpu_count()} logical cores, {mem:.0f} GiB RAM" if mem else f"{cpu_name()}, {os.cpu_count()} cores"
    ) + (
        f"; torch CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 CPU flags: {bf16} "
        f"(native bf16 matmul: {'yes' if cpu_has_fast_bf16() else 'no'}); torch {torch.__version__}, "
        f"transformers {transformers.__version__}, peft {peft.__version__}, python {platform.python_version()}. "
        "No GPU here: GPU figures are in docs/benchmarks-gpu.md (`python -m bench --device cuda`)."
    )


# -- charts ------------------------------------------------------------------------------------------
def draw(chart: Chart, folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(chart.labels) + 2), 3.2), dpi=100)
    bars = ax.bar(range(len(chart.values)), chart.values, color="#4c72b0")
    ax.set_xticks(range(len(chart.labels)), chart.labels, rotation=30 if len(chart.labels) > 4 else 0, ha="right"
                  if len(chart.labels) > 4 else "center", fontsize=8)
    ax.bar_label(bars, fmt="%.3g", fontsize=7)
    if chart.reference is not None:
        ax.axhline(chart.reference, color="#c44e52", linestyle="--", linewidth=1, label=chart.reference_label or None)
        if chart.reference_label:
            ax.legend(fontsize=7)
    ax.set_ylabel(chart.ylabel, fontsize=8)
    ax.set_title(chart.title, fontsize=9)
    fig.tight_layout()
    path = folder / f"{chart.name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


#: Fixed text of the page: what swiftune does to be fast, and how to read and rerun the figures.
ABOUT = [
    "## How swiftune's LoRA is made fast (the same work as PEFT's, checked)",
    "",
    "- **One fused autograd op per LoRA linear layer** (`tuners/lora/fused.py`): `x W^T + b + s (h A^T) B^T` is one "
    "node; the LoRA product is accumulated into the base output in place (`addmm_`, beta=1), and in backward the "
    "LoRA part of the input gradient is accumulated into the base part's GEMM the same way. No scaled temporary, "
    "no separate (tokens, in) gradient to add, one graph node instead of five. The input is not saved for a frozen "
    "base weight.",
    "- **No dropout work when p = 0**: the branch reads `x` itself (no identity module, no copy).",
    "- **Under bf16 autocast the plain (unfused) path runs**: a fused bf16 variant (input cast once, frozen "
    "weight's bf16 copy cached) was tried and removed: on this CPU its in-place rank-r bf16 GEMMs took a slow "
    "kernel and measured slower than autocast's own `linear`.",
    "- **bf16 autocast by default where the CPU has native bf16** (AVX512-BF16 or AMX; `swiftune sft "
    "--precision auto`), fp32 elsewhere.",
    "- **Frozen Linear weights stored in bf16 when training under bf16** (`swiftune.cast_frozen_linears`, on in "
    "`swiftune sft`): autocast re-casts every frozen fp32 weight at every forward (its cast cache keeps only "
    "weights that require grad); rounding them once gives the very same values, so the loss and gradients are "
    "bit-identical (checked before timing), with no cast per step and half the frozen layers' memory.",
    "- **`swiftune sft` does not compute what the loss ignores**: padding-free batches (a micro-batch's examples "
    "in one row, `position_ids` restarting per example, which transformers' masks keep apart; checked on the "
    "real model at start) and LM-head logits only at positions with a trained label (`logits_to_keep` as a "
    "tensor, `shift_labels` into the model's own loss). Same loss and gradients as the padded batch (tests "
    "compare them); less work on padding and on prompt tokens.",
    "- **The LM head fused into the loss** (`swiftune.linear_cross_entropy`, on in `swiftune sft`): the head's "
    "GEMM, the fp32 softmax, the loss and the gradient of the hidden states (and of a trained head's weight, in "
    "full fine-tuning) are computed a few rows at a time (128 rows of a 49k vocabulary in bf16), the gradients "
    "during the forward pass. The (tokens x vocabulary) "
    "logits, their fp32 copy, the log-softmax and its gradient (five tensors of about 200 MB here) are never "
    "materialised; the plain path writes and re-reads each of them from memory. The tied head's bf16 copy is "
    "cast once, not per step. Same loss; gradients within float rounding (checked at step 0 against PEFT). "
    "Measurement 1 times swiftune's step through it (sft's step); \"swiftune bf16, model's loss\" is the "
    "model's own head and loss.",
    "- **Tried, measured, not shipped**: per-example SDPA on padding-free rows (slower here: the CPU flash-attention "
    "backward has a large cost per call), eager attention (faster at short bf16 sequences, much slower at 512), "
    "`torch.compile` of the whole model (a 159 s compile on this machine), a batched-matmul attention with fp32 "
    "scores and recomputation in backward (as accurate as the flash kernel, but faster only below ~128 tokens; "
    "with bf16 scores, as eager attention rounds them, 1.5x faster at 4 x 256 but less accurate than flash, so "
    "not used).",
    "- **Optional regional compilation** (`swiftune sft --compile`): each decoder block compiled in place, one "
    "compile for all (about 20-40 s here), no KV cache in training; off by default because the compile time "
    "outweighs the gain in runs of a few minutes (measurement 1 shows the compiled step).",
    "- Before any timing, measurement 1 checks that swiftune's and PEFT's step-0 loss and LoRA gradients agree.",
    "- **Run-to-run spread**: this machine is shared; one comparison varies by up to +-10% between runs (four "
    "runs of measurement 1 on 2026-12-02 gave swiftune fp32 / PEFT fp32 medians of 0.77x to 0.91x, bf16 0.92x "
    "to 0.95x, compiled bf16 0.78x to 0.88x). Each table below is one run; read targets near the line with that "
    "in mind.",
    "",
    "Rerun: `make bench` (all measurements), `make bench BENCH_ARGS=--quick` (a smoke run on a tiny model), "
    "`.venv/bin/python -m bench --only step --rounds 5 --write /tmp/b.md` (one measurement). "
    "`--seq/--batch/--long-seq/--long-batch/--e2e-steps` change the shapes; the defaults are the shapes the targets are set at.",
    "",
]


# -- the page ----------------------------------------------------------------------------------------
def render(sections: list[Section], command: str, settings_text: str, chart_dir: Path, page: Path) -> str:
    """The whole markdown page; charts are drawn into ``chart_dir`` and linked relative to ``page``."""
    out = [
        "# Benchmarks: swiftune vs PEFT",
        "",
        "<!-- written by `make bench` (python -m bench); edits here are overwritten -->",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Settings: {settings_text}",
        "",
        "Timings are the process CPU time (`time.process_time`, all threads) unless said otherwise, "
        "with contenders alternating in one process (order reversed every other round); ratios are "
        "given for the minimum and the median over rounds, and \"paired\" is the median of per-round ratios.",
        "",
        *ABOUT,
        "## Targets against PEFT",
        "",
    ]
    rows = []
    for s in sections:
        for t in s.targets:
            rows.append([t.what, t.figure, {True: "met", False: "**missed**", None: "not measured"}[t.met]])
    out += table(["target", "measured", "status"], rows, "llr") if rows else ["(no targets measured)", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        out += s.lines
        for chart in s.charts:
            path = draw(chart, chart_dir)
            rel = os.path.relpath(path, page.parent)
            out += [f"![{chart.title}]({rel})", ""]
        out += [f"<sub>section time {s.seconds:.0f} s</sub>", ""]
    return "\n".join(out).rstrip() + "\n"
