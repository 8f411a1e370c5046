"""Start-up with a large data set: process start to the end of the first optimizer step.

``swiftune sft`` reads, renders and tokenizes every row before training (then caches the result by
content), while the plain PEFT + ``Trainer`` script (``bench/peft_trainer.py --lazy``) tokenizes a
row only when the Trainer asks for it. Each run is its own process, launched here; the time is from
the launch to the moment the first optimizer step has ended (``logging.jsonl`` gets its first line
for swiftune, polled every 10 ms; the time the script writes to its ``--first-step-file`` for PEFT). swiftune runs twice
per round: with an empty tokenized-data cache (cold) and again with the same data (warm).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import Settings
from .report import Section, Target, table
from .sft_e2e import DATA, ROOT, model_folder

TITLE = "9. Start-up with 10k rows: process start to the first optimizer step"
ROWS = 10_000


def write_rows(path: Path, n: int) -> Path:
    """``n`` distinct chats: the demo data's, each answer numbered (so no two rows are equal)."""
    base = [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()]
    with path.open("w") as fh:
        for i in range(n):
            row = json.loads(json.dumps(base[i % len(base)]))
            row["messages"][-1]["content"] += f" (#{i})"
            fh.write(json.dumps(row) + "\n")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def until_first_step(argv: list[str], marker: Path, env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """(seconds from launch to ``marker`` being written, CPU seconds the process had used by then,
    seconds to the process's end). The CPU time does not count waiting for the cores of a busy machine."""
    t0 = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        first = cpu = None
        while proc.poll() is None:
            if first is None and marker.is_file() and marker.stat().st_size > 0:
                first = time.time()
                try:
                    cpu = cpu_seconds(proc.pid)
                except (OSError, ValueError, IndexError):  # exited in between
                    cpu = None
            time.sleep(0.01)
        wall = time.time() - t0
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{' '.join(argv[1:4])} failed: {tail[0][:300]}")
    if marker.suffix == ".time":  # the script wrote the time itself
        first = float(marker.read_text())
    if first is None or cpu is None:
        raise RuntimeError(f"{marker} was not seen while the process ran: no optimizer step, or it exited at once")
    return first - t0, cpu, wall


def swiftune_argv(model: Path, data: Path, out: Path, precision: str, max_length: int) -> list[str]:
    return [sys.executable, "-m", "swiftune", "sft", "--model", str(model), "--dataset", str(data),
            "--output-dir", str(out), "--max-steps", "1", "--per-device-train-batch-size", "4",
            "--gradient-accumulation-steps", "1",
            "--precision", precision, "--max-length", str(max_length), "--val-ratio", "0", "--save-steps", "100000",
            "--logging-steps", "1", "--overwrite-output-dir", "--r", "8", "--lora-alpha", "16"]  # fmt: skip


def peft_argv(model: Path, data: Path, out: Path, precision: str, max_length: int, marker: Path) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "peft_trainer.py"), "--model", str(model), "--data", str(data),
            "--output-dir", str(out), "--steps", "1", "--batch", "4", "--precision", precision,
            "--max-length", str(max_length), "--lazy", "--first-step-file", str(marker)]  # fmt: skip


def run(settings: Settings, ctx: dict[str, Any]) -> Section:
    from swiftune.recipes.runtime import resolve_precision

    precision = resolve_precision("auto", "cpu")
    rows, rounds, max_length = (200, 1, 64) if settings.quick else (ROWS, 3, 512)
    got: dict[str, list[tuple[float, float, float]]] = {"peft + Trainer (lazy)": [], "swiftune sft, cold cache": [],
                                                 "swiftune sft, warm cache": []}
    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, source = model_folder(settings, tmp)
        data = write_rows(tmp / "chats.jsonl", rows)
        for i in range(rounds):
            marker = tmp / f"peft-{i}.time"
            got["peft + Trainer (lazy)"].append(until_first_step(
                peft_argv(model, data, tmp / f"peft-{i}", precision, max_length, marker), marker, base_env,
                tmp / f"peft-{i}.log"))
            env = {**base_env, "SWIFTUNE_CACHE": str(tmp / f"cache-{i}")}  # empty: a cold start
            for who in ("swiftune sft, cold cache", "swiftune sft, warm cache"):
                out = tmp / f"sft-{i}-{who[-10:-6]}"
                got[who].append(until_first_step(swiftune_argv(model, data, out, precision, max_length),
                                                  out / "logging.jsonl", env, tmp / f"sft-{i}.log"))
            print("  start-up " + ", ".join(f"{w}: {v[-1][0]:.1f} s ({v[-1][1]:.1f} CPU s)" for w, v in got.items()),
                  flush=True)
    med = {w: statistics.median(s for s, _, _ in v) for w, v in got.items()}
    cpu = {w: statistics.median(c for _, c, _ in v) for w, v in got.items()}
    peft, peft_cpu = med["peft + Trainer (lazy)"], cpu["peft + Trainer (lazy)"]
    rows_out = [[w, f"{med[w]:.1f}", f"{min(s for s, _, _ in v):.1f}", f"{med[w] / peft:.2f}x", f"{cpu[w]:.1f}",
                 f"{cpu[w] / peft_cpu:.2f}x", f"{statistics.median(x for _, _, x in v):.1f}"] for w, v in got.items()]
    lines = table(["run", "start to first step, wall s (median)", "best", "vs PEFT", "CPU s to first step (median)",
                   "vs PEFT", "process wall, s"], rows_out)
    best = {w: min(s for s, _, _ in v) for w, v in got.items()}
    peft_best = best["peft + Trainer (lazy)"]
    targets = [Target(f"`swiftune sft` start-up <= 1.5x the lazy PEFT script's ({rows:,} rows, {kind})",
                      f"{best[w] / peft_best:.2f}x (best wall), {med[w] / peft:.2f}x (median wall), "
                      f"{cpu[w] / peft_cpu:.2f}x (median CPU)", best[w] / peft_best <= 1.5)
               for w, kind in (("swiftune sft, warm cache", "warm cache"), ("swiftune sft, cold cache", "cold cache"))]
    intro = (
        f"Model: {source}; {rows:,} distinct chats (the demo data, each answer numbered), max length "
        f"{max_length}, batch 4 without gradient accumulation, one optimizer step, precision `{precision}`, LoRA r=8 "
        "on all linear layers. "
        "Time from launching the process to the end of its first optimizer step (imports, model load, data, "
        "tokenization, start-up checks, Trainer set-up and the step itself). The PEFT script tokenizes lazily "
        "(`bench/peft_trainer.py --lazy`: each row when the Trainer reads it); `swiftune sft` tokenizes every row "
        "up front in batches and caches the result by content under `SWIFTUNE_CACHE`: *cold* starts from an "
        "empty cache, *warm* is the rerun with the same data, template, tokenizer and max length. CPU time = user "
        "+ system of the process when its first step ended (from /proc). The target is judged on the best round's "
        "wall time: on a machine shared with other work the median mostly measures waiting for a core."
    )
    return Section("startup", TITLE, intro, lines, [], targets)
