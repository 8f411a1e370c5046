"""The benchmark suite (bench/, `make bench`) runs end to end in its quick mode and writes its page.

Quick mode uses a tiny random model, so the numbers say nothing about speed; what is checked is that
every measurement of the suite runs, fills its table and chart, and that the page is well-formed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TITLES = [
    "1. LoRA training step",
    "2. Unmerged LoRA forward overhead",
    "3. Generation with an unmerged adapter",
    "4. Peak memory of a training step, per tuner",
    "5. QLoRA",
    "6. Res-Tuning vs LoRA",
    "7. End to end",
    "8. Efficiency against the measured matmul limit",
]


@pytest.mark.slow  # ~30 s CPU (two `sft` subprocesses among it); minutes of wall time on a loaded machine
def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--write", str(page)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = page.read_text()
    for title in TITLES:
        assert f"## {title}" in text, title
    assert "**Failed**" not in text, text
    # The step comparison produced four contenders with positive times and three ratios.
    step_section = text.split("## 1. LoRA training step", 1)[1].split("\n## ", 1)[0]
    step = re.findall(r"^\| (swiftune|peft) (fp32|bf16) \| ([0-9.]+) \|", step_section, re.M)
    assert len(step) == 4 and all(float(s[2]) > 0 for s in step)
    # Every tuner has a row in the memory table: a figure, or the reason it has none.
    for tuner in ["lora", "qlora", "adapter", "prefix", "prompt", "side", "restuning", "part", "bitfit", "full", "peft"]:
        assert re.search(rf"^\| {tuner} \| ", text, re.M), tuner
    # The targets table lists every speed / memory target against PEFT with a status each.
    assert text.count("| met |") + text.count("| **missed** |") + text.count("| not measured |") >= 8
    # Charts are real PNG files, linked relative to the page.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(links) >= 7
    for link in links:
        assert (page.parent / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link


@pytest.mark.slow  # ~70 s on 2 CPU cores: the GPU suite's code on a tiny model, two `sft`-sized subprocesses among it
def test_gpu_suite_runs_on_cpu_in_quick_mode(tmp_path: Path) -> None:
    """`python -m bench --device cpu --quick`: every section of docs/benchmarks-gpu.md fills without a GPU."""
    page = tmp_path / "benchmarks-gpu.md"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "bench", "--device", "cpu", "--quick", "--write", str(page)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = page.read_text()
    for title in ("1. LoRA training step at equal adapter precision", "2. Fused head loss vs the plain head",
                  "3. QLoRA training step", "4. End to end"):
        assert f"## {title}" in text, title
    assert "**Failed**" not in text, text
    # Step-0 agreement with PEFT at equal (fp32) adapter precision is part of the page.
    assert "Trainable dtypes: swiftune ['torch.float32'], PEFT ['torch.float32']" in text
    diff = float(re.search(r"\|diff\| ([0-9.e+-]+)\.", text).group(1))
    assert diff < 1e-3


def test_gpu_suite_refuses_cuda_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "bench", "--device", "cuda"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
