"""``swiftune sft`` end to end on a tiny llama: YAML + flags, run folder contents, atomic
checkpoints, resume after a kill, the Python entry point, precision choice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import swiftune
from swiftune.cli.args import parse_command
from swiftune.errors import ConfigError
from swiftune.recipes.arguments import SftArguments
from swiftune.recipes import runtime
from swiftune.recipes.runtime import resolve_precision

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, read_jsonl, run_cli

CHECKPOINT_FILES = {"adapter_config.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt",
                    "trainer_state.json", "rng_state.pth"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    return ensure_model(root), ensure_data(root)


def train_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_jsonl(run_dir / "logging.jsonl") if "loss" in r]


@pytest.mark.slow
def test_sft_from_yaml_and_flags(assets, tmp_path) -> None:
    model, data = assets
    out = tmp_path / "run"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model: {model}\ndataset: [{data}]\noutput_dir: {out}\nmax_steps: 100\nsave_steps: 4\n"
        "save_total_limit: 2\nval_ratio: 0.125\nreport_to: [tensorboard]\nprecision: auto\n"
        "tuner_args:\n  r: 4\n  lora_alpha: 16\n"
    )
    flags = [f for f in TRAIN_FLAGS if f not in ("--precision", "fp32")]
    proc = run_cli("sft", str(cfg), "--max-steps", "12", *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for word in ("model", "tuner", "trainable", "data", "steps"):
        assert any(line.startswith(word) for line in proc.stdout.splitlines()), proc.stdout

    args = json.loads((out / "args.json").read_text())
    assert args["max_steps"] == 12 and args["learning_rate"] == pytest.approx(2e-2)  # flags beat the file
    assert args["save_steps"] == 4 and args["model"] == str(model)  # the file's values stay
    assert args["tuner_args"]["r"] == 4 and args["tuner_args"]["lora_alpha"] == 16
    assert args["tuner_args"]["target_modules"] == "all-linear"  # resolved: the full tuner config
    assert args["resolved_precision"] == resolve_precision("auto")

    log = read_jsonl(out / "logging.jsonl")
    train = [r for r in log if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, 13))
    for key in ("learning_rate", "tokens_per_second", "elapsed_s", "remaining_s", "memory_mb"):
        assert train[-1][key] is not None, key
    assert train[-1]["remaining_s"] == 0 and train[0]["remaining_s"] > 0
    assert [r["step"] for r in log if "eval_loss" in r] == [4, 8, 12]
    first, last = train[0]["loss"], sum(r["loss"] for r in train[-3:]) / 3
    assert last < 0.6 * first, (first, last)

    # Rotation kept the two newest checkpoints; each holds the adapter and the trainer state only.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-8"]
    for ckpt in out.glob("checkpoint-*"):
        names = {p.name for p in ckpt.iterdir()}
        assert CHECKPOINT_FILES <= names, names
        assert not [n for n in names if n.startswith(("model", "pytorch_model", "training_args"))], names
    assert not (out / ".staging").exists()
    final = load_file(out / "final" / "adapter_model.safetensors")
    last_ckpt = load_file(out / "checkpoint-12" / "adapter_model.safetensors")
    assert final.keys() == last_ckpt.keys() and all(torch.equal(final[k], last_ckpt[k]) for k in final)
    assert all(k.startswith("base_model.model.") and ".lora_" in k for k in final)  # PEFT's key layout
    assert any(".lora_B." in k and final[k].abs().sum() > 0 for k in final)

    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "runs").rglob("events.out.tfevents.*")), "no TensorBoard event file"


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(assets, tmp_path) -> None:
    model, data = assets
    common = ["--model", str(model), "--dataset", str(data), "--max-steps", "10", "--save-steps", "4",
              "--val-ratio", "0", "--lora-dropout", "0.1", *TRAIN_FLAGS]
    ref, run = tmp_path / "ref", tmp_path / "killed"
    # The uninterrupted reference runs in this process (same code path, less start-up time).
    swiftune.sft(parse_command(SftArguments, [*common, "--output-dir", str(ref)], prog="swiftune sft"))

    # Killed after checkpoint 8 was fully staged but before it was published.
    proc = run_cli("sft", *common, "--output-dir", str(run), env={"SWIFTUNE_FAULT": "before_publish:8"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert [p.name for p in run.glob("checkpoint-*")] == ["checkpoint-4"]
    assert (run / ".staging" / "checkpoint-8" / "trainer_state.json").is_file()
    assert train_losses(run)[-1][0] == 8  # it got that far

    with pytest.raises(ConfigError, match="already holds checkpoints; pass --resume"):
        swiftune.sft(model=str(model), dataset=[str(data)], output_dir=str(run))

    proc = run_cli("sft", *common, "--output-dir", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming from {run / 'checkpoint-4'}" in proc.stdout
    got, want = train_losses(run), train_losses(ref)
    assert [s for s, _ in got] == list(range(1, 11)) == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5, abs=1e-6)
    a, b = load_file(ref / "final" / "adapter_model.safetensors"), load_file(run / "final" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)  # float noise only
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-8"]


def test_python_entry_point_with_packing_and_checkpointing(assets, tmp_path, capsys) -> None:
    model, data = assets
    out = tmp_path / "py"
    result = swiftune.sft(model=str(model), dataset=[f"{data}#16"], output_dir=str(out), max_steps=2,
                          save_steps=2, logging_steps=1, val_ratio=0, packing=True, max_length=64,
                          gradient_checkpointing=True, precision="fp32", per_device_train_batch_size=2,
                          gradient_accumulation_steps=1, tuner_args={"r": 2, "target_modules": ["q_proj", "v_proj"]})
    assert result.global_step == 2 and result.adapter_dir == out / "final"
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert {k.split(".")[-3] for k in weights} == {"q_proj", "v_proj"}
    summary = capsys.readouterr().out
    (data_line,) = [line for line in summary.splitlines() if line.startswith("data")]
    packed = int(data_line.split()[1])
    assert 0 < packed < 16, data_line  # 16 short conversations fit in fewer 64-token blocks
    losses = train_losses(out)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(v)) for _, v in losses)


def test_precision_auto_follows_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto") == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto") == "fp32"
    assert resolve_precision("fp16") == "fp16"


def test_resume_refuses_a_folder_that_is_not_a_checkpoint(assets, tmp_path) -> None:
    model, data = assets
    with pytest.raises(ConfigError, match=r"--resume: .* is not a complete checkpoint folder"):
        swiftune.sft(model=str(model), dataset=[str(data)], output_dir=str(tmp_path), resume=str(tmp_path))


def test_python_entry_points_survive_importing_the_recipe_modules() -> None:
    """The recipe modules share the functions' names: importing them must not shadow the functions."""
    import importlib

    for name in ("sft", "infer", "export"):
        importlib.import_module(f"swiftune.recipes.{name}")
        assert callable(swiftune.__getattr__(name)), name
        assert callable(getattr(importlib.import_module("swiftune.recipes.calls"), name)), name
