"""Time one LoRA training step (forward + backward + AdamW) of swiftune and of PEFT, side by side.

Both libraries run in one process on deep copies of the same base model, with the same LoRA
weights copied across, and must agree on the loss, the logits and the LoRA gradients before any
timing starts, so that the two timings measure the same work. Rounds alternate which library goes
first; the process CPU time (``time.process_time``) is the main measure because the machine is
shared, and the minimum over rounds is the least disturbed one.

    python bench/lora_step.py [--rounds 8] [--threads 1 2] [--vocab 8192] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ATOL = 1e-5
SECTION = "lora-training-step"
#: swiftune forced onto its unfused path (a no-op hook on each base layer), to show what fusing buys.
UNFUSED = "swiftune-unfused"


@dataclass
class Setup:
    """The shapes of the benchmark; every field shows up in the written table."""

    hidden: int = 512
    layers: int = 6
    intermediate: int = 1376
    heads: int = 8
    vocab: int = 8192
    seq: int = 256
    batch: int = 4
    r: int = 8
    alpha: int = 16


@dataclass
class Timings:
    """Per-step seconds, one entry per round."""

    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


# -- models --------------------------------------------------------------------------------------
def base_model(s: Setup) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
        num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
        max_position_embeddings=max(2048, s.seq), tie_word_embeddings=False,
    )  # fmt: skip
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg).float().train()


def lora_models(s: Setup) -> dict[str, nn.Module]:
    """swiftune and PEFT LoRA on copies of one base model, with identical (non-zero) LoRA weights."""
    import peft

    from swiftune import Swift

    base = base_model(s)
    ours = Swift.prepare(
        copy.deepcopy(base),
        {"tuner": "lora", "r": s.r, "lora_alpha": s.alpha, "lora_dropout": 0.0, "target_modules": "all-linear"},
    )
    cfg = peft.LoraConfig(
        r=s.r, lora_alpha=s.alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    theirs = peft.get_peft_model(copy.deepcopy(base), cfg)
    # B starts at zero in both; give it small random values (the same in both) so that the
    # step-0 check below also compares the gradients of lora_A and the LoRA branch's output.
    torch.manual_seed(1)
    peft_params = dict(theirs.named_parameters())
    ours_params = [(n, p) for n, p in ours.named_parameters() if p.requires_grad]
    peft_trainable = {n for n, p in theirs.named_parameters() if p.requires_grad}
    if len(ours_params) != len(peft_trainable):
        raise SystemExit(f"trainable tensors differ: swiftune {len(ours_params)}, peft {len(peft_trainable)}")
    with torch.no_grad():
        for name, p in ours_params:
            twin = peft_params["base_model.model." + name.removeprefix("model.")]
            if ".lora_B." in name:
                twin.normal_(std=0.02)
            p.copy_(twin)
    return {"swiftune": ours, "peft": theirs}


def unfused_copy(model: nn.Module) -> nn.Module:
    """A copy of the swiftune model whose LoRA layers take the unfused path: a base layer with a
    hook must be called as a module, so ``LoraLinear`` computes base and LoRA separately."""
    from swiftune.tuners.lora.layer import LoraLinear

    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, LoraLinear):
            m.base_layer.register_forward_pre_hook(lambda mod, args: None)
    return twin


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# -- step-0 check ----------------------------------------------------------------------------------
def lora_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """LoRA gradients keyed by the path below the decoder layers (same in both libraries)."""
    out = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            out[name[name.index("layers.") :]] = p.grad
    return out


def saved_activation_bytes(model: nn.Module, step: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd keeps for backward, weights excluded (each storage once)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def check_same_work(models: dict[str, nn.Module], ids: torch.Tensor) -> dict[str, float]:
    """Loss, logits and LoRA gradients of every contender must match PEFT's within ``ATOL``.

    Returns the largest differences seen. Fails too if the LoRA branch does not change the
    logits, since then agreeing would prove little.
    """
    results = {}
    for lib, model in models.items():
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        results[lib] = (out.loss.detach(), out.logits.detach(), lora_grads(model))
        model.zero_grad(set_to_none=True)
    with torch.no_grad(), models["swiftune"].disable_adapters():
        base_logits = models["swiftune"](input_ids=ids).logits
    l2, z2, g2 = results["peft"]
    if not (z2 - base_logits).abs().max().item() > 100 * ATOL:
        raise SystemExit("the LoRA branch does not change the logits: the check below would be vacuous")
    report: dict[str, float] = {}
    for lib in models:
        l1, z1, g1 = results[lib]
        if g1.keys() != g2.keys():
            raise SystemExit(f"{lib}: LoRA gradients differ in names: {sorted(g1.keys() ^ g2.keys())[:4]}")
        diffs = {
            "loss": abs(l1 - l2).item(),
            "logits": (z1 - z2).abs().max().item(),
            "lora_A grads": max((g1[k] - g2[k]).abs().max().item() for k in g1 if ".lora_A." in k),
            "lora_B grads": max((g1[k] - g2[k]).abs().max().item() for k in g1 if ".lora_B." in k),
        }
        bad = {k: v for k, v in diffs.items() if not v <= ATOL}
        if bad:
            raise SystemExit(f"{lib} and PEFT disagree at step 0 (atol {ATOL}): {bad}")
        report = {k: max(report.get(k, 0.0), v) for k, v in diffs.items()}
    return report


# -- timing ----------------------------------------------------------------------------------------
def make_step(model: nn.Module, ids: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.AdamW(trainable(model), lr=1e-4)

    def step() -> None:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed(step: Callable[[], None]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    step()
    return time.process_time() - c0, time.perf_counter() - w0


def run_rounds(steps: dict[str, Callable[[], None]], rounds: int, warmup: int) -> dict[str, Timings]:
    """Per-step times; each round runs every contender once, in reversed order every other round."""
    libs = list(steps)
    for _ in range(warmup):
        for lib in libs:
            steps[lib]()
    out = {lib: Timings() for lib in libs}
    for i in range(rounds):
        for lib in libs if i % 2 == 0 else libs[::-1]:
            cpu, wall = timed(steps[lib])
            out[lib].cpu.append(cpu)
            out[lib].wall.append(wall)
        print(f"  round {i + 1}/{rounds}: " + ", ".join(f"{k} {out[k].cpu[-1]:.3f}s cpu" for k in libs), flush=True)
    return out


@dataclass
class Row:
    threads: int
    t: dict[str, Timings]

    def ratio(self, lib: str, kind: str, how: Callable[[list[float]], float]) -> float:
        return how(getattr(self.t[lib], kind)) / how(getattr(self.t["peft"], kind))

    def paired_ratio(self, lib: str) -> float:
        """Median over rounds of the CPU-time ratio of ``lib``'s and PEFT's steps in one round."""
        return statistics.median(a / b for a, b in zip(self.t[lib].cpu, self.t["peft"].cpu))


# -- reporting -------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> str:
    import peft
    import transformers

    return (
        f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
        f"python {platform.python_version()}"
    )


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| threads | library | CPU s/step min | CPU s/step median | wall s/step min | wall s/step median |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for lib, t in row.t.items():
            lines.append(
                f"| {row.threads} | {lib} | {min(t.cpu):.3f} | {statistics.median(t.cpu):.3f} "
                f"| {min(t.wall):.3f} | {statistics.median(t.wall):.3f} |"
            )
        for lib in row.t:
            if lib == "peft":
                continue
            bold = "**" if lib == "swiftune" else ""
            lines.append(
                f"| {row.threads} | {bold}{lib} / peft{bold} | {bold}{row.ratio(lib, 'cpu', min):.3f}{bold} "
                f"| {row.ratio(lib, 'cpu', statistics.median):.3f} (paired {row.paired_ratio(lib):.3f}) "
                f"| {row.ratio(lib, 'wall', min):.3f} | {row.ratio(lib, 'wall', statistics.median):.3f} |"
            )
    return lines


def section(s: Setup, args: argparse.Namespace, rows: list[Row], check: dict[str, float], saved: dict[str, int]) -> str:
    cmd = "python bench/lora_step.py " + " ".join(sys.argv[1:])
    checks = ", ".join(f"{k} {v:.1e}" for k, v in check.items())
    lines = [
        f"<!-- {SECTION}:start (written by bench/lora_step.py --write; edits here are overwritten) -->",
        "## LoRA training step: swiftune vs PEFT",
        "",
        f"One training step (forward, backward, AdamW) of a `LlamaForCausalLM` built from a config: hidden {s.hidden}, "
        f"{s.layers} layers, intermediate {s.intermediate}, {s.heads} heads, vocab {s.vocab}, SDPA attention, fp32; "
        f"batch {s.batch} x {s.seq} tokens. LoRA r={s.r}, lora_alpha={s.alpha}, dropout 0, on all linear layers "
        "but `lm_head` (`target_modules=\"all-linear\"` in both). Both run in one process on deep copies of the "
        "same base weights with the same LoRA weights; before timing, the step-0 loss, logits and LoRA "
        f"gradients must agree within {ATOL:g} (max abs differences here: {checks}).",
        "",
        f"{args.warmup} warm-up step(s) each, then {args.rounds} rounds of one step each, reversing the order of the "
        "contenders every other round. CPU time is the process's (`time.process_time`, all threads), the measure "
        "that matters on a shared machine; the minimum is the least disturbed round. \"paired\" is the median of "
        "the per-round ratios.",
        *(
            [
                "",
                f"`{UNFUSED}` is the same swiftune model with a no-op forward pre-hook on every base layer, which "
                "sends `LoraLinear` down its general path (base layer called as a module, then one `addmm` adding "
                "the LoRA product) instead of the fused autograd op of `swiftune/tuners/lora/fused.py`.",
            ]
            if UNFUSED in rows[0].t
            else []
        ),
        "",
        *table(rows),
        "",
        "Tensors kept for backward per step (weights excluded): "
        + ", ".join(f"{lib} {n / 2**20:.1f} MiB" for lib, n in saved.items())
        + f". Peak RSS of the whole process (all models): {peak_rss_mib():.0f} MiB.",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores (shared with other work while measured); "
        f"{versions()}.",
        f"<!-- {SECTION}:end -->",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), leaving the rest of the page alone."""
    start, end = f"<!-- {SECTION}:start", f"<!-- {SECTION}:end -->"
    old = path.read_text() if path.exists() else "# Benchmarks\n\nNumbers written by the scripts in `bench/`.\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


# -- main ------------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="timed rounds (one step per library each)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per library first")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch intra-op thread counts to run")
    p.add_argument("--vocab", type=int, default=8192, help="vocabulary size (SmolLM2's is 49152)")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--no-unfused", action="store_true", help=f"leave out the {UNFUSED} contender")
    p.add_argument("--write", type=Path, help="rewrite this benchmark's section of a markdown file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when piped, too
    s = Setup(vocab=args.vocab, seq=args.seq, batch=args.batch)
    models = lora_models(s)
    if not args.no_unfused:
        models[UNFUSED] = unfused_copy(models["swiftune"])
    ids = torch.randint(s.vocab, (s.batch, s.seq), generator=torch.Generator().manual_seed(2))
    check = check_same_work(models, ids)
    print("step 0 agrees: " + ", ".join(f"{k} {v:.1e}" for k, v in check.items()))
    saved = {lib: saved_activation_bytes(m, lambda m=m: m(input_ids=ids, labels=ids).loss) for lib, m in models.items()}
    steps = {lib: make_step(m, ids) for lib, m in models.items()}
    rows = []
    for n in args.threads:
        torch.set_num_threads(n)
        print(f"threads={n}:")
        rows.append(Row(n, run_rounds(steps, args.rounds, args.warmup)))
    print("\n".join(table(rows)))
    print(f"saved for backward: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in saved.items()))
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    if args.write:
        write_section(args.write, section(s, args, rows, check, saved))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
