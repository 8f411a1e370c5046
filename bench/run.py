"""The runner: every measurement of the suite in order, then the report (``python -m bench``).

    python -m bench --write docs/benchmarks.md          # the full suite (make bench)
    python -m bench --quick --write /tmp/bench.md       # small shapes, few rounds (tests/test_bench.py)
    python -m bench --only step forward                 # some measurements
    python -m bench --device cuda --write docs/benchmarks-gpu.md   # the GPU suite (bench/gpu.py, bench/gpu.sh)
    python -m bench --device cpu --quick                # the GPU suite's code on a tiny model, on CPU

A measurement that fails is reported as such on the page (with its error), the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import json
from dataclasses import asdict, replace
from pathlib import Path

#: Measurement modules, in the order of the page; each has ``TITLE`` and ``run(settings, ctx) -> Section``.
MEASUREMENTS = ["step", "forward", "generate", "memory", "qlora", "restuning", "sft_e2e", "efficiency", "startup",
                "dpo"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="swiftune vs PEFT benchmarks")
    p.add_argument("--device", help="run the GPU suite (bench/gpu.py) on this device: cuda, cuda:1, or cpu "
                   "(with --quick: a check of its code); without it, the CPU suite")
    p.add_argument("--quick", action="store_true", help="tiny model, 2 rounds: checks the code, not the speed")
    p.add_argument("--write", type=Path, help="markdown page to (re)write, e.g. docs/benchmarks.md")
    p.add_argument("--charts", type=Path, help="folder for the PNG charts (default: <page folder>/benchmarks)")
    p.add_argument("--rounds", type=int, help="timed rounds per comparison (default 3; quick 2)")
    p.add_argument("--warmup", type=int, help="untimed calls per contender first (default 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    p.add_argument("--seq", type=int, help="tokens per sequence of measurements 1-5 and 8 (default 256)")
    p.add_argument("--batch", type=int, help="sequences per batch of measurements 1-5 and 8 (default 4)")
    p.add_argument("--long-seq", type=int, help="Res-Tuning vs LoRA sequence length (default 512)")
    p.add_argument("--long-batch", type=int, help="Res-Tuning vs LoRA batch (default 8)")
    p.add_argument("--e2e-steps", type=int, help="optimizer steps per end-to-end sft run (default 16)")
    p.add_argument("--dump", type=Path, help="also save the sections as JSON (for --merge)")
    p.add_argument("--merge", type=Path, nargs="+", help="write --write from --dump files of runs made in parallel")
    p.add_argument("--only", nargs="+", choices=MEASUREMENTS, help="run only these measurements")
    p.add_argument("--skip", nargs="+", choices=MEASUREMENTS, default=[], help="leave these out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.merge:
        return merge(args)
    if args.device:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from .gpu import main as gpu_main

        return gpu_main(args, argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.stdout.reconfigure(line_buffering=True)
    import torch

    from .common import FULL, QUICK, Settings
    from .report import Section, render

    torch.set_num_threads(args.threads)
    shape = QUICK if args.quick else FULL
    shape = replace(shape, seq=args.seq or shape.seq, batch=args.batch or shape.batch)
    settings = Settings(
        shape=shape, quick=args.quick, threads=args.threads,
        long_seq=args.long_seq or (64 if args.quick else 512), long_batch=args.long_batch or (4 if args.quick else 8),
        e2e_steps=args.e2e_steps or (2 if args.quick else 16),
        rounds=args.rounds or (2 if args.quick else 3), warmup=1 if args.warmup is None else args.warmup,
    )  # fmt: skip
    chosen = [m for m in (args.only or MEASUREMENTS) if m not in args.skip]
    ctx: dict = {}
    sections = []
    t_all = time.perf_counter()
    for name in chosen:
        module = importlib.import_module(f".{name}", __package__)
        print(f"== {module.TITLE}", flush=True)
        t0 = time.perf_counter()
        try:
            section = module.run(settings, ctx)
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the others
            section = Section(name, module.TITLE, lines=[f"**Failed**: `{type(exc).__name__}: {exc}`"[:600], ""])
            print(f"   failed: {type(exc).__name__}: {exc}", flush=True)
        section.seconds = time.perf_counter() - t0
        sections.append(section)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    text_settings = (
        f"{'quick mode (tiny shapes: checks the code, not the speed); ' if args.quick else ''}"
        f"{settings.rounds} timed rounds after {settings.warmup} warm-up per comparison, "
        f"{settings.threads} torch threads; total {time.perf_counter() - t_all:.0f} s."
    )
    if args.dump:
        args.dump.write_text(json.dumps({"command": command, "settings": text_settings,
                                         "sections": [asdict(s) for s in sections]}))
    if args.write:
        page = args.write
        charts = args.charts or page.parent / "benchmarks"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(render(sections, command, text_settings, charts, page))
        print(f"wrote {page} (charts in {charts})")
    else:
        for s in sections:
            print(f"\n## {s.title}\n" + "\n".join(s.lines))
    return 0


def merge(args: argparse.Namespace) -> int:
    """One page from the ``--dump`` files of runs made side by side (each ``--only`` some measurements);
    a measurement found in several files is taken from the last of them."""
    from .report import Chart, Section, Target, render

    runs = [json.loads(p.read_text()) for p in args.merge if p.exists()]
    by_key: dict[str, Section] = {}  # a measurement in several dumps: the last dump's wins
    for run in runs:
        for d in run["sections"]:
            d["charts"] = [Chart(**c) for c in d["charts"]]
            d["targets"] = [Target(**t) for t in d["targets"]]
            by_key[d["key"]] = Section(**d)
    sections = list(by_key.values())
    present = set(by_key)
    for name in MEASUREMENTS:
        if name not in present:
            title = importlib.import_module(f".{name}", __package__).TITLE
            sections.append(Section(name, title, lines=["Not run in this page's runs (out of time on the shared "
                                                       "machine); rerun with `python -m bench --only " + name + "`.", ""]))
    sections.sort(key=lambda s: MEASUREMENTS.index(s.key) if s.key in MEASUREMENTS else len(MEASUREMENTS))
    command = " ; ".join(r["command"] for r in runs) + " (then merged into one page with --merge)"
    settings = " | ".join(r["settings"] for r in runs)
    page = args.write or Path("docs/benchmarks.md")
    page.write_text(render(sections, command, settings, args.charts or page.parent / "benchmarks", page))
    print(f"wrote {page}")
    return 0
