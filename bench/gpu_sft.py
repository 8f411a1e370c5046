"""GPU suite, 4: ``swiftune sft`` end to end against PEFT + ``Trainer`` with ``DataCollatorWithFlattening``.

The CPU suite's two runners (bench/sft_e2e.py: ``python -m swiftune sft`` and
bench/peft_trainer.py, each in its own process) on the GPU suite's saved bf16 model, with chats
long enough to matter at this size: random sentences of the tiny word tokenizer's words (about
300 to 1,800 tokens each). The plain script gets transformers' own padding-free collator
(``--flatten``), the fair opponent of swiftune's padding-free batches. Both train the assistant
turns only, LoRA r=16 alpha=32 on all linear layers, bf16 (``Trainer(bf16=True)``).
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

from .gpu import GpuSettings
from .report import Section, Target, table
from .sft_e2e import peft_run, swiftune_run

TITLE = "4. End to end: `swiftune sft` vs PEFT + Trainer with DataCollatorWithFlattening"


def write_chats(path: Path, rows: int, quick: bool, seed: int = 0) -> Path:
    """``rows`` chats of one user turn and one long assistant turn made of the tiny tokenizer's words."""
    from swiftune.testing.tokenizers import WORDS

    rng = random.Random(seed)
    words = [w for w in WORDS if w.isalnum()]
    lo, hi = (10, 40) if quick else (250, 1700)

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    lines = [json.dumps({"messages": [{"role": "user", "content": text(rng.randint(lo // 4, hi // 8))},
                                      {"role": "assistant", "content": text(rng.randint(lo, hi))}]})
             for _ in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(settings: GpuSettings, ctx: dict[str, Any]) -> list[Section]:
    folder, tmp = ctx["model_folder"], ctx["tmp"]
    steps, batch = settings.e2e_steps, (2 if settings.quick else settings.shape.batch)
    max_length = 64 if settings.quick else settings.shape.seq
    data = write_chats(tmp / "chats.jsonl", steps * batch + 8, settings.quick)
    precision = "bf16" if settings.device.startswith("cuda") else "fp32"
    kw = {"data": data, "r": settings.shape.r, "alpha": settings.shape.alpha}
    got: dict[str, list[dict[str, Any]]] = {"swiftune sft": [], "peft + Trainer (flattening)": []}
    if not settings.quick:  # one untimed run of each first: a fresh machine's first processes ran slower
        swiftune_run(folder, tmp / "warm-swiftune", 2, batch, precision, max_length, **kw)
        peft_run(folder, tmp / "warm-peft", 2, batch, precision, max_length, flatten=True, **kw)
    for i in range(settings.e2e_rounds):
        order = list(got) if i % 2 == 0 else list(got)[::-1]
        for who in order:
            out = tmp / f"e2e-{who[:5]}-{i}"
            if who == "swiftune sft":
                res = swiftune_run(folder, out, steps, batch, precision, max_length, **kw)
            else:
                res = peft_run(folder, out, steps, batch, precision, max_length, flatten=True, **kw)
            res["tps"] = res["tokens"] / res["train_runtime"]
            got[who].append(res)
            print(f"  sft e2e {who}: {res['tps']:.0f} tokens/s, train {res['train_runtime']:.1f} s, "
                  f"process {res['wall']:.1f} s", flush=True)
    med = {w: statistics.median(r["tps"] for r in rs) for w, rs in got.items()}
    speed = med["swiftune sft"] / med["peft + Trainer (flattening)"]
    rows = [[w, f"{med[w]:,.0f}", f"{statistics.median(r['train_runtime'] for r in rs):.1f}",
             f"{statistics.median(r['wall'] for r in rs):.1f}", f"{rs[0]['tokens']:,}"] for w, rs in got.items()]
    rows.append(["**swiftune / peft**", f"**{speed:.3f}x**", "", "", ""])
    lines = table(["run", "train tokens / s (median)", "train loop s", "process wall s", "tokens per run"], rows)
    lines += ["tokens / s = non-padding input tokens / the Trainer's `train_runtime` (the train loop: data loading, "
              "forward, backward, optimizer; start-up, loading and tokenizing are in the process wall time).", ""]
    intro = (f"{steps} optimizer steps of {batch} chats (max length {max_length}), {settings.e2e_rounds} run(s) of each, "
             f"alternating which goes first{'' if settings.quick else ', after one untimed 2-step run of each'}; "
             f"precision {precision}; lr 2e-4 cosine, AdamW.")
    targets = [Target("`swiftune sft` tokens/s >= 1.5x PEFT + Trainer with DataCollatorWithFlattening",
                      f"{speed:.3f}x", speed >= 1.5)]
    return [Section("sft_e2e", TITLE, intro, lines, [], targets)]
