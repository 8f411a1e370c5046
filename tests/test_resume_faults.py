"""``--resume`` after I/O faults: a torn run-log line, damaged checkpoints.

One short run (4 steps, a checkpoint every 2) is made once; each test copies it, damages the copy
the way a full disk or a kill would, and resumes it in this process.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import swiftune
from swiftune.errors import SwiftuneError

from cli_fixtures import ensure_data, ensure_model, read_jsonl

RUN = dict(max_steps=4, save_steps=2, save_total_limit=None, val_ratio=0, logging_steps=1, precision="fp32",
           per_device_train_batch_size=4, gradient_accumulation_steps=1, learning_rate=2e-2,
           lr_scheduler_type="constant", warmup_steps=0, seed=0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("resume-faults")
    kwargs = dict(model=str(ensure_model(root)), dataset=[str(ensure_data(root))], **RUN)
    swiftune.sft(output_dir=str(root / "reference"), **kwargs)
    return root / "reference", kwargs


def killed_after_checkpoint_2(finished_run, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the run as a kill at step 4 (before checkpoint 4 is published) leaves it."""
    reference, kwargs = finished_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "checkpoint-4")
    shutil.rmtree(run / "final")
    return run, kwargs


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    return x.keys() == y.keys() and all(torch.allclose(x[k], y[k], rtol=1e-4, atol=1e-6) for k in x)


def train_steps(run: Path) -> list[int]:
    return [r["step"] for r in read_jsonl(run / "logging.jsonl") if "loss" in r]


def test_a_torn_last_log_line_is_dropped_and_the_run_resumes(finished_run, tmp_path, caplog) -> None:
    run, kwargs = killed_after_checkpoint_2(finished_run, tmp_path)
    log = run / "logging.jsonl"
    lines = log.read_text().splitlines()
    with log.open("a") as fh:
        fh.write('{"step": 4, "loss": 1.23, "learn')  # the disk filled up in the middle of an append
    with caplog.at_level(logging.WARNING, logger="swiftune"):
        swiftune.sft(output_dir=str(run), resume=True, **kwargs)
    torn = [r.getMessage() for r in caplog.records if "torn" in r.getMessage()]
    assert torn and str(log) in torn[0] and f"line {len(lines) + 1}" in torn[0], caplog.text
    assert train_steps(run) == [1, 2, 3, 4]  # one uninterrupted run, the torn line gone
    assert same_weights(run / "final", finished_run[0] / "final")


def test_a_damaged_log_line_before_the_last_is_an_error_naming_file_and_line(finished_run, tmp_path) -> None:
    run, kwargs = killed_after_checkpoint_2(finished_run, tmp_path)
    log = run / "logging.jsonl"
    lines = log.read_text().splitlines()
    lines[1] = lines[1][:10]
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(SwiftuneError, match=rf"{log} line 2"):
        swiftune.sft(output_dir=str(run), resume=True, **kwargs)


DAMAGES = {
    "adapter_model.safetensors": lambda data: data[: len(data) // 2],
    "trainer_state.json": lambda data: data[:20],
    "optimizer.pt": lambda data: data[: len(data) // 3],
}


@pytest.mark.parametrize("name", [*DAMAGES, "missing optimizer.pt", "missing adapter_model.safetensors"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(finished_run, tmp_path, caplog, name) -> None:
    reference, kwargs = finished_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "final")
    if name.startswith("missing "):  # the Trainer would go on with a fresh optimizer / fail unnamed
        (run / "checkpoint-4" / name.split()[1]).unlink()
        damaged = run / "checkpoint-4"
    else:
        damaged = run / "checkpoint-4" / name
        damaged.write_bytes(DAMAGES[name](damaged.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="swiftune"):
        swiftune.sft(output_dir=str(run), resume=True, **kwargs)
    assert any(str(damaged) in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING), caplog.text
    assert same_weights(run / "final", reference / "final")  # steps 3 and 4 were trained again
    assert same_weights(run / "checkpoint-4", reference / "checkpoint-4")  # republished, whole


def test_every_checkpoint_damaged_is_an_error_naming_the_files(finished_run, tmp_path) -> None:
    reference, kwargs = finished_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "final")
    for step in (2, 4):
        (run / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(SwiftuneError) as info:
        swiftune.sft(output_dir=str(run), resume=True, **kwargs)
    for step in (2, 4):
        assert str(run / f"checkpoint-{step}" / "adapter_model.safetensors") in str(info.value)
    # Nothing was replaced: the damaged checkpoints are still there for the user to look at.
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


def test_an_explicit_damaged_checkpoint_is_an_error_naming_the_file(finished_run, tmp_path) -> None:
    reference, kwargs = finished_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "final")
    damaged = run / "checkpoint-2" / "adapter_model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(SwiftuneError, match=str(damaged)):
        swiftune.sft(output_dir=str(run), resume=str(run / "checkpoint-2"), **kwargs)


def test_a_checkpoint_with_nan_weights_is_passed_over(finished_run, tmp_path, caplog) -> None:
    """A finished run's checkpoint 4 with NaN weights: resuming neither makes final/ from it nor
    continues from it, but trains steps 3 and 4 again from checkpoint 2."""
    from safetensors.torch import save_file

    reference, kwargs = finished_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "final")
    weights = run / "checkpoint-4" / "adapter_model.safetensors"
    state = load_file(weights)
    name = sorted(state)[0]
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, weights)
    with caplog.at_level(logging.WARNING, logger="swiftune"):
        swiftune.sft(output_dir=str(run), resume=True, **kwargs)
    assert f"{weights}: tensor '{name}' holds NaN/inf values" in caplog.text
    assert same_weights(run / "final", reference / "final")
    with pytest.raises(SwiftuneError, match="NaN/inf"):  # asked for by name: an error, no fallback
        save_file(state, weights)
        swiftune.sft(output_dir=str(run), resume=str(run / "checkpoint-4"), **kwargs)
