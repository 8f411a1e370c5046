"""A run whose weights, loss or gradient norm become NaN / inf stops with an error naming the step,
and never writes a checkpoint or ``final/`` with non-finite weights (it used to finish with exit 0
and an all-NaN adapter)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import swiftune
from swiftune.recipes.finite_guard import FiniteGuard, NonFiniteError, nonfinite_parameters

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, read_jsonl, run_cli

RUN = dict(val_ratio=0, logging_steps=1, precision="fp32", per_device_train_batch_size=4,
           gradient_accumulation_steps=1, lr_scheduler_type="constant", warmup_steps=0, seed=0, save_total_limit=None)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    return ensure_model(root), ensure_data(root)


def all_finite(folder: Path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(folder / "adapter_model.safetensors").values())


def test_learning_rate_inf_stops_at_step_1_without_writing_weights(assets, tmp_path) -> None:
    model, data = assets
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"step 1\b.*no checkpoint was written"):
        swiftune.sft(model=str(model), dataset=[str(data)], output_dir=str(out), max_steps=4, save_steps=2,
                     learning_rate=math.inf, **RUN)
    assert not (out / "final").exists() and not list(out.glob("checkpoint-*"))


@pytest.mark.slow
def test_learning_rate_inf_exits_non_zero_naming_the_step(assets, tmp_path) -> None:
    model, data = assets
    out = tmp_path / "run"
    flags = [f for f in TRAIN_FLAGS]
    flags[flags.index("--learning-rate") + 1] = "inf"
    proc = run_cli("sft", "--model", str(model), "--dataset", str(data), "--output-dir", str(out),
                   "--max-steps", "4", "--save-steps", "2", "--val-ratio", "0", *flags)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "step 1" in proc.stderr and "NaN" in proc.stderr, proc.stderr[-2000:]
    assert not (out / "final").exists() and not list(out.glob("checkpoint-*"))


def test_divergence_keeps_the_last_good_checkpoint(assets, tmp_path) -> None:
    """lr 1e30: step 1's update is huge but finite (checkpoint 1 is published), step 2 overflows."""
    model, data = assets
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"step 2\b.*checkpoint-1") as info:
        swiftune.sft(model=str(model), dataset=[str(data)], output_dir=str(out), max_steps=6, save_steps=1,
                     learning_rate=1e30, **RUN)
    assert str(out / "checkpoint-1") in str(info.value)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert all_finite(out / "checkpoint-1")
    assert not (out / "final").exists()
    assert max(r["step"] for r in read_jsonl(out / "logging.jsonl")) <= 2


def test_a_nan_loss_in_the_log_stops_the_run() -> None:
    guard = FiniteGuard("/nonexistent")
    args = SimpleNamespace(fp16=False, learning_rate=1e-3)
    guard.on_log(args, SimpleNamespace(global_step=3), None, logs={"loss": 1.5, "grad_norm": 0.3})
    for logs in ({"loss": math.nan}, {"loss": 1.0, "grad_norm": math.inf}):
        with pytest.raises(NonFiniteError, match="step 7"):
            guard.on_log(args, SimpleNamespace(global_step=7), None, logs=logs)
    # fp16: the gradient scaler skips a step whose gradients overflow; that alone is no error.
    guard.on_log(SimpleNamespace(fp16=True, learning_rate=1e-3), SimpleNamespace(global_step=7), None,
                 logs={"loss": 1.0, "grad_norm": math.inf})


def test_nonfinite_parameters_names_the_tensors() -> None:
    good, nan, inf = torch.zeros(3), torch.tensor([0.0, math.nan]), torch.tensor([math.inf])
    assert nonfinite_parameters([("a", good)]) == []
    assert nonfinite_parameters([("a", good), ("b", nan), ("c", inf)]) == ["b", "c"]
    huge, mixed = torch.full((10,), 1e30), torch.tensor([math.inf, -math.inf])
    assert nonfinite_parameters([("huge", huge)]) == []  # large but finite is no error
    assert nonfinite_parameters([("m", mixed), ("h", inf.to(torch.bfloat16))]) == ["m", "h"]
