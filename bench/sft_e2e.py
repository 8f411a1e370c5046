"""Measurement 7: end-to-end ``swiftune sft`` against a plain PEFT + ``Trainer`` script.

Same model folder, same data file, same steps, batch and precision; each run is its own process
(``python -m swiftune sft ...`` and ``python bench/peft_trainer.py ...``), alternating which goes
first. The figure is training tokens (non-padding input tokens) per second of the Trainer's train
loop; the process wall time (start-up, loading, tokenizing, saving included) is shown too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import EMBEDDED, Settings, random_llama
from .report import Chart, Section, Target, table

TITLE = "7. End to end: `swiftune sft` vs a plain PEFT + Trainer script"
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "model_zoo" / "data" / "swiftune-demo.jsonl"


def model_folder(settings: Settings, tmp: Path) -> tuple[Path, str]:
    """A model folder both sides load: the embedded model's converted cache, else a saved random model."""
    if settings.shape.use_embedded:
        try:
            from swiftune.loading import ensure_converted, find_packaged

            found = find_packaged(EMBEDDED)
            if found is not None:
                return ensure_converted(found[1]), f"`{EMBEDDED}`"
        except Exception:  # noqa: BLE001 - fall back to random weights
            pass
    from swiftune.testing.tokenizers import tiny_tokenizer

    folder = tmp / "model"
    random_llama(settings.shape).save_pretrained(folder)
    tiny_tokenizer("chatml").save_pretrained(folder)
    return folder, "a random-weight Llama of the benchmark's shape with a tiny word tokenizer"


def swiftune_run(model: Path, out: Path, steps: int, batch: int, precision: str, max_length: int, data: Path = DATA,
                 r: int = 8, alpha: int = 16) -> dict[str, Any]:
    argv = [sys.executable, "-m", "swiftune", "sft", "--model", str(model), "--dataset", str(data),
            "--output-dir", str(out), "--max-steps", str(steps), "--per-device-train-batch-size", str(batch),
            "--gradient-accumulation-steps", "1", "--precision", precision, "--max-length", str(max_length),
            "--val-ratio", "0", "--save-steps", "100000", "--logging-steps", "1", "--overwrite-output-dir",
            "--r", str(r), "--lora-alpha", str(alpha), "--learning-rate", "2e-4"]  # fmt: skip
    wall = _run(argv)
    records = [json.loads(x) for x in (out / "logging.jsonl").read_text().splitlines() if x.strip()]
    runtime = next(r["train_runtime"] for r in reversed(records) if "train_runtime" in r)
    state = json.loads((out / "trainer_state.json").read_text()) if (out / "trainer_state.json").exists() else {}
    tokens = state.get("num_input_tokens_seen") or max(r.get("num_input_tokens_seen", 0) or 0 for r in records)
    return {"train_runtime": runtime, "tokens": tokens, "wall": wall}


def peft_run(model: Path, out: Path, steps: int, batch: int, precision: str, max_length: int, data: Path = DATA,
             r: int = 8, alpha: int = 16, flatten: bool = False) -> dict[str, Any]:
    argv = [sys.executable, str(ROOT / "bench" / "peft_trainer.py"), "--model", str(model), "--data", str(data),
            "--output-dir", str(out), "--steps", str(steps), "--batch", str(batch), "--precision", precision,
            "--max-length", str(max_length), "--r", str(r), "--alpha", str(alpha)]  # fmt: skip
    argv += ["--flatten"] if flatten else []
    proc_out: list[str] = []
    wall = _run(argv, proc_out)
    result = json.loads(next(x for x in proc_out[0].splitlines() if x.startswith("RESULT "))[7:])
    return {**result, "wall": wall}


def _run(argv: list[str], stdout: list[str] | None = None) -> float:
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(argv[1]).name if argv[1] != '-m' else 'swiftune sft'} failed: "
                           + (proc.stderr.strip().splitlines() or ["?"])[-1][:300])
    if stdout is not None:
        stdout.append(proc.stdout)
    return wall


def run(settings: Settings, ctx: dict[str, Any]) -> Section:
    from swiftune.recipes.runtime import resolve_precision

    default = resolve_precision("auto", "cpu")
    steps, batch, max_length = settings.e2e_steps, (2 if settings.quick else 4), (64 if settings.quick else 512)
    precision, rounds = default, (1 if settings.quick else 3)
    got: dict[str, list[dict[str, Any]]] = {"swiftune sft": [], "peft + Trainer": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, source = model_folder(settings, tmp)
        for i in range(rounds):
            order = ["swiftune sft", "peft + Trainer"] if i % 2 == 0 else ["peft + Trainer", "swiftune sft"]
            for who in order:
                fn = swiftune_run if who == "swiftune sft" else peft_run
                res = fn(model, tmp / f"{who[:5]}-{precision}-{i}", steps, batch, precision, max_length)
                res["tps"] = res["tokens"] / res["train_runtime"]
                got[who].append(res)
                print(f"  sft {precision} {who}: {res['tps']:.0f} tokens/s, wall {res['wall']:.1f} s", flush=True)
    med = {w: statistics.median(r["tps"] for r in rs) for w, rs in got.items()}
    rows = [[w, precision, f"{max(r['tps'] for r in rs):.0f}", f"{med[w]:.0f}",
             f"{statistics.median(r['wall'] for r in rs):.1f}", f"{rs[0]['tokens']}"] for w, rs in got.items()]
    speed = med["swiftune sft"] / med["peft + Trainer"]
    best = max(r["tps"] for r in got["swiftune sft"]) / max(r["tps"] for r in got["peft + Trainer"])
    rows.append(["**swiftune / peft**", precision, f"{best:.3f}x", f"**{speed:.3f}x**", "", ""])
    targets = [Target(f"`swiftune sft` tokens/s >= 1.3x PEFT + Trainer ({precision})",
                      f"{speed:.3f}x (median), {best:.3f}x (best)", speed >= 1.3)]
    lines = table(["run", "precision", "tokens/s best", "tokens/s median", "process wall s (median)", "tokens per run"], rows)
    chart = Chart("sft_e2e", "Train-loop tokens per second (median)", [f"{w} {precision}" for w in med],
                  list(med.values()), "tokens / s")
    intro = (
        f"Model: {source}; data: `model_zoo/data/swiftune-demo.jsonl` (chat), {steps} optimizer steps of batch {batch}, "
        f"max length {max_length}, LoRA r=8 alpha=16 on all linear layers, lr 2e-4 cosine, AdamW. swiftune's default "
        f"precision on this machine resolves to `{default}`; the PEFT script gets the same (`bf16=True` is the "
        "Trainer's CPU autocast). Both train on the assistant turns only (the plain script masks the prompt by "
        "rendering each turn's prefix with the chat template), so both compute the same loss. tokens/s = non-padding input tokens / Trainer `train_runtime`. "
        "`swiftune sft` runs with its defaults: padding-free batches, LM-head logits only at labelled positions, "
        "the LM head fused into the loss, frozen Linear weights stored in bf16 (each gives the same loss as the "
        "plain path; see the top of the page)."
    )
    return Section("sft_e2e", TITLE, intro, lines, [chart], targets)
