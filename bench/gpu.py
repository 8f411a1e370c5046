"""The GPU suite: ``python -m bench --device cuda`` writes docs/benchmarks-gpu.md.

A random-weight Llama of Llama-3.2-1B's dimensions (hidden 2048, 16 layers, 32 / 8 heads,
intermediate 8192, vocab 128256, tied embeddings) in bf16, batch 8 x 2048, LoRA r=16 alpha=32 on
all linear layers. Both libraries keep their adapter weights in fp32 (swiftune's ``adapter_dtype``
default on a bf16 base, PEFT's ``autocast_adapter_dtype``) and run under bf16 autocast, as the
``Trainer``'s ``bf16=True`` does: equal precision. Times are wall-clock seconds between
``torch.cuda.synchronize()`` calls; memory is ``torch.cuda.max_memory_allocated`` during one
step, plus what the contender holds between steps (its model, optimizer state), each contender
measured alone. ``--device cpu --quick`` runs the same code on a tiny model (tests/test_bench.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .common import QUICK, Shape, causal_lm_loss, fused_head, lora_pair
from .report import Section, Target, fmt, table

#: Llama-3.2-1B's dimensions (random weights), LoRA r=16 / alpha=32.
GPU_SHAPE = Shape(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, seq=2048, batch=8,
                  r=16, alpha=32, use_embedded=False)
GPU_QUICK = replace(QUICK, r=4, alpha=8)
MEASUREMENTS = ["step", "qlora", "sft_e2e"]
GIB = 2**30


@dataclass
class GpuSettings:
    device: str
    shape: Shape
    quick: bool
    rounds: int
    warmup: int
    e2e_steps: int
    e2e_rounds: int
    dtype: torch.dtype = torch.bfloat16

    @property
    def tokens(self) -> int:
        return self.shape.seq * self.shape.batch

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(torch.device(self.device).type, dtype=self.dtype)


# -- model and contenders ---------------------------------------------------------------------------
def llama(settings: GpuSettings) -> nn.Module:
    """A seeded random ``LlamaForCausalLM`` of the settings' shape, built on the device, in bf16."""
    from transformers import LlamaConfig, LlamaForCausalLM

    s = settings.shape
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, max_position_embeddings=max(4096, s.seq),
        tie_word_embeddings=True, pad_token_id=0, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    cfg._attn_implementation = "sdpa"
    with torch.device(settings.device):
        model = LlamaForCausalLM(cfg)
    return model.to(settings.dtype).train()


def batch_of(settings: GpuSettings, seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(settings.shape.vocab, (settings.shape.batch, settings.shape.seq), generator=g).to(settings.device)
    return {"input_ids": ids, "labels": ids}


def held_bytes(*objects: Any) -> int:
    """Bytes of the tensors a model / optimizer holds between steps, each storage counted once."""
    seen: dict[int, int] = {}
    for obj in objects:
        if isinstance(obj, nn.Module):
            tensors = list(obj.parameters()) + list(obj.buffers())
        else:  # an optimizer
            tensors = [t for state in obj.state.values() for t in state.values() if torch.is_tensor(t)]
        for t in tensors:
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


@dataclass
class Contender:
    """One library's model and the training step it takes (forward, backward, AdamW)."""

    model: nn.Module
    step: Callable[[], float]
    optimizer: torch.optim.Optimizer

    def held(self) -> int:
        return held_bytes(self.model, self.optimizer)


def contender(model: nn.Module, batch: dict[str, torch.Tensor], settings: GpuSettings, head_loss: Any = None) -> Contender:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> float:
        with settings.autocast():
            loss = causal_lm_loss(model, batch, head_loss)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return Contender(model, step, opt)


@dataclass
class Measured:
    wall: list[float] = field(default_factory=list)
    peak: int | None = None  # bytes: held between steps + the step's own peak

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def best(self) -> float:
        return min(self.wall)


def measure(contenders: dict[str, Contender], settings: GpuSettings, label: str) -> dict[str, Measured]:
    """Warm-up, then one memory pass per contender (alone), then timed rounds in alternating order."""
    out = {n: Measured() for n in contenders}
    for c in contenders.values():
        for _ in range(settings.warmup):
            c.step()
    settings.sync()
    cuda = settings.device.startswith("cuda")
    for name, c in contenders.items():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            c.step()
            torch.cuda.synchronize()
            out[name].peak = c.held() + torch.cuda.max_memory_allocated() - before
    names = list(contenders)
    for i in range(settings.rounds):
        for n in names if i % 2 == 0 else names[::-1]:
            settings.sync()
            t0 = time.perf_counter()
            contenders[n].step()
            settings.sync()
            out[n].wall.append(time.perf_counter() - t0)
        print(f"  {label} round {i + 1}/{settings.rounds}: " + ", ".join(f"{n} {out[n].wall[-1]:.3f}s" for n in names),
              flush=True)
    return out


def gib(x: int | None) -> str:
    return "n/a" if x is None else f"{x / GIB:.2f}"


def rows_of(got: dict[str, Measured], tokens: int) -> list[str]:
    rows = [[n, f"{m.median * 1e3:.1f}", f"{m.best * 1e3:.1f}", f"{tokens / m.median:,.0f}", gib(m.peak)]
            for n, m in got.items()]
    return table(["contender", "step ms (median)", "step ms (best)", "tokens / s (median)", "peak GiB"], rows)


def ratio_of(got: dict[str, Measured], a: str, b: str) -> tuple[float, float | None]:
    """(time ratio of medians, peak memory ratio or None)."""
    mem = got[a].peak / got[b].peak if got[a].peak and got[b].peak else None
    return got[a].median / got[b].median, mem


def step_loss_check(models: dict[str, nn.Module], batch: dict[str, torch.Tensor], settings: GpuSettings,
                    head: Any) -> float:
    """Step-0 loss of swiftune (sft's fused head loss) against PEFT's, both under the same autocast."""
    with torch.no_grad(), settings.autocast():
        ours = causal_lm_loss(models["swiftune"], batch, head).item()
        theirs = causal_lm_loss(models["peft"], batch).item()
    diff = abs(ours - theirs)
    if not diff <= 0.05 * max(1.0, abs(theirs)):
        raise RuntimeError(f"swiftune and PEFT disagree at step 0: loss {ours} vs {theirs}")
    return diff


# -- 1 + 2: LoRA step and the fused head loss --------------------------------------------------------------
def run_step(settings: GpuSettings, ctx: dict[str, Any]) -> list[Section]:
    shape = settings.shape
    models = lora_pair(shape, ctx.pop("base", None) or llama(settings))
    ours = models["swiftune"]
    dtypes = {str(p.dtype) for n, p in ours.named_parameters() if p.requires_grad}
    theirs = {str(p.dtype) for n, p in models["peft"].named_parameters() if p.requires_grad}
    batch = batch_of(settings)
    head = fused_head(ours)
    diff = step_loss_check(models, batch, settings, head)
    lean_bf16 = _bf16_adapter_twin(ours)
    contenders = {
        "swiftune (fp32 adapters, sft's fused head loss)": contender(ours, batch, settings, head),
        "peft (fp32 adapters)": contender(models["peft"], batch, settings),
        "swiftune (fp32 adapters, model's own head + loss)": contender(ours, batch, settings),
        "swiftune (bf16 adapters, fused head loss)": contender(lean_bf16, batch, settings, fused_head(lean_bf16)),
    }
    got = measure(contenders, settings, "lora step")
    names = list(contenders)
    t_eq, m_eq = ratio_of(got, names[0], names[1])
    t_plain, m_plain = ratio_of(got, names[2], names[1])
    t_head, m_head = ratio_of(got, names[0], names[2])
    lines = rows_of(got, settings.tokens)
    lines += table(["ratio", "time", "peak memory"], [
        ["swiftune / peft, equal precision (sft's step)", f"{t_eq:.3f}x", fmt(m_eq)],
        ["swiftune with the model's own loss / peft", f"{t_plain:.3f}x", fmt(m_plain)],
        ["swiftune bf16 adapters / peft fp32 adapters", f"{ratio_of(got, names[3], names[1])[0]:.3f}x",
         fmt(ratio_of(got, names[3], names[1])[1])],
    ])
    lines += [f"Trainable dtypes: swiftune {sorted(dtypes)}, PEFT {sorted(theirs)}. Step-0 loss, swiftune (fused head "
              f"loss) vs PEFT, same LoRA weights, under bf16 autocast: |diff| {diff:.1e}.", ""]
    targets = [
        Target("LoRA step time <= 0.8x PEFT at equal adapter precision (fp32 adapters, bf16 autocast)", f"{t_eq:.3f}x",
               t_eq <= 0.8),
        Target("LoRA step peak memory <= 0.75x PEFT at equal adapter precision", fmt(m_eq) + "x" if m_eq else "n/a (no CUDA)",
               None if m_eq is None else m_eq <= 0.75),
    ]
    intro = (f"{shape.describe()}; batch {shape.batch} x {shape.seq} tokens, no gradient checkpointing, SDPA attention. "
             f"LoRA r={shape.r}, alpha={shape.alpha}, dropout 0, all linear layers but `lm_head`; AdamW. "
             f"{settings.warmup} warm-up steps and {settings.rounds} timed steps per contender (alternating order).")
    step = Section("step", "1. LoRA training step at equal adapter precision", intro, lines, [], targets)
    head_lines = table(["", "time", "peak memory"], [["fused head loss / model's own head + loss (both swiftune)",
                                                      f"{t_head:.3f}x", fmt(m_head)]])
    head_lines += ["The fused head loss (`swiftune sft`'s default) computes the LM head and the cross-entropy a few "
                   "rows at a time: no (tokens x vocab) logits tensor, no fp32 copy of it. Rows above: the same "
                   "model and step, only the loss differs.", ""]
    head_sec = Section("head", "2. Fused head loss vs the plain head", "", head_lines, [], [])
    for m in contenders.values():
        m.optimizer.state.clear()
    del contenders, models, ours, lean_bf16
    _free(settings)
    return [step, head_sec]


def _bf16_adapter_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its LoRA weights in bf16, as ``adapter_dtype="bfloat16"`` gives (swiftune's
    earlier default on bf16 bases, whose small updates round away)."""
    twin = copy.deepcopy(model)
    for n, p in twin.named_parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    return twin


def _free(settings: GpuSettings) -> None:
    import gc

    gc.collect()
    if settings.device.startswith("cuda"):
        torch.cuda.empty_cache()


# -- the runner and the page -------------------------------------------------------------------------------
TITLES = {"step": "1-2. LoRA step, fused head loss", "qlora": "3. QLoRA step", "sft_e2e": "4. sft end to end"}


def save_model(model: nn.Module, folder: Path) -> Path:
    """The benchmark model (bf16) and the tiny word tokenizer, for the loaders of measurements 3 and 4."""
    from swiftune.testing.tokenizers import tiny_tokenizer

    model.save_pretrained(folder)
    tiny_tokenizer("chatml").save_pretrained(folder)
    return folder


def machine(device: str) -> str:
    import peft
    import transformers

    try:
        import bitsandbytes

        bnb = bitsandbytes.__version__
    except Exception as exc:  # noqa: BLE001 - reported, the QLoRA section then fails with the reason
        bnb = f"not importable ({type(exc).__name__})"
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        where = f"{props.name}, {props.total_memory / GIB:.0f} GiB, CUDA {torch.version.cuda}"
    else:
        where = f"CPU ({platform.processor() or platform.machine()})"
    return (f"{where}; torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
            f"bitsandbytes {bnb}, python {platform.python_version()}")


def render(sections: list[Section], command: str, settings_text: str, machine_text: str) -> str:
    out = ["# GPU benchmarks: swiftune vs PEFT", "",
           "<!-- written by `python -m bench --device cuda` (bench/gpu.sh); edits here are overwritten -->", "",
           f"Command: `{command}`  ", f"Machine: {machine_text}  ", f"Settings: {settings_text}", "",
           (__doc__ or "").split("\n\n", 1)[1].strip().replace("\n", " "), "", "## Targets", ""]
    rows = [[t.what, t.figure, {True: "met", False: "**missed**", None: "not measured"}[t.met]]
            for s in sections for t in s.targets]
    out += table(["target", "measured", "status"], rows, "llr") if rows else ["(no targets measured)", ""]
    for s in sections:
        out += [f"## {s.title}", ""] + ([s.intro, ""] if s.intro else []) + s.lines
        out += [f"<sub>section time {s.seconds:.0f} s</sub>", ""]
    return "\n".join(out).rstrip() + "\n"


def main(args: Any, argv: list[str] | None) -> int:
    import importlib

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here (run bench/gpu.sh on a GPU machine)", file=sys.stderr)
        return 2
    shape = GPU_QUICK if args.quick else GPU_SHAPE
    shape = replace(shape, seq=args.seq or shape.seq, batch=args.batch or shape.batch)
    settings = GpuSettings(
        device=args.device, shape=shape, quick=args.quick, rounds=args.rounds or (2 if args.quick else 6),
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        e2e_steps=args.e2e_steps or (2 if args.quick else 30), e2e_rounds=1 if args.quick else 2,
    )  # fmt: skip
    chosen = [m for m in (args.only or MEASUREMENTS) if m in MEASUREMENTS and m not in (args.skip or [])]
    modules = {"step": __name__, "qlora": f"{__package__}.gpu_qlora", "sft_e2e": f"{__package__}.gpu_sft"}
    t_all = time.perf_counter()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        ctx: dict[str, Any] = {"tmp": Path(tmp_name)}
        base = llama(settings)
        if {"qlora", "sft_e2e"} & set(chosen):
            ctx["model_folder"] = save_model(base, Path(tmp_name) / "model")
        ctx["base"] = base
        del base
        for name in chosen:
            print(f"== {TITLES[name]}", flush=True)
            module = importlib.import_module(modules[name])
            t0 = time.perf_counter()
            try:
                got = run_step(settings, ctx) if name == "step" else module.run(settings, ctx)
            except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the others
                import traceback

                traceback.print_exc()
                got = [Section(name, TITLES[name], lines=[f"**Failed**: `{type(exc).__name__}: {exc}`"[:600], ""])]
            ctx.pop("base", None)
            _free(settings)
            for s in got:
                s.seconds = (time.perf_counter() - t0) / len(got)
            sections += got
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    settings_text = (f"{'quick mode (tiny shapes: checks the code, not the speed); ' if args.quick else ''}"
                     f"{settings.warmup} warm-up + {settings.rounds} timed steps per contender; total "
                     f"{time.perf_counter() - t_all:.0f} s.")
    page = render(sections, command, settings_text, machine(args.device))
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(page)
        print(f"wrote {args.write}")
    else:
        print(page)
    if args.dump:
        args.dump.write_text(json.dumps({"command": command, "sections": [s.__dict__ for s in sections]}, default=str))
    return 0
