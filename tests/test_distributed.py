"""``torchrun --nproc-per-node 2 -m swiftune sft``: DDP with gloo on CPU, through the Trainer.

Two processes with 2 examples each must train exactly like one process with 4: the same loss at
every step and the same adapter, which holds only if the gradients are averaged across ranks.
Both ranks end with equal adapters that changed; only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import swiftune
from swiftune.cli.args import parse_command
from swiftune.recipes.arguments import SftArguments

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, read_jsonl, run

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch built without distributed / gloo")


def flags(per_device: int) -> list[str]:
    out = list(TRAIN_FLAGS)
    out[out.index("--per-device-train-batch-size") + 1] = str(per_device)
    return out


@pytest.mark.slow
def test_ddp_two_processes_train_like_one(tmp_path_factory, tmp_path) -> None:
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    model, data = ensure_model(root), ensure_data(root)
    common = ["--model", str(model), "--dataset", str(data), "--max-steps", "6", "--save-steps", "3",
              "--val-ratio", "0"]
    ddp_dir, single_dir, digests = tmp_path / "ddp", tmp_path / "single", tmp_path / "digests"

    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "swiftune", "sft", *common, *flags(2), "--output-dir", str(ddp_dir)],
               env={"SWIFTUNE_DIGEST_DIR": str(digests)}, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    swiftune.sft(parse_command(SftArguments, [*common, *flags(4), "--output-dir", str(single_dir)], prog="sft"))

    # Both ranks trained and ended with the same (changed) adapter.
    records = [json.loads((digests / f"digest-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2] and [r["global_step"] for r in records] == [6, 6]
    assert records[0]["final"] == records[1]["final"] != records[0]["initial"]

    # Gradients were averaged: 2 x 2 examples per step == 1 x 4 examples per step.
    ddp_log, single_log = read_jsonl(ddp_dir / "logging.jsonl"), read_jsonl(single_dir / "logging.jsonl")
    ddp_loss = [(r["step"], r["loss"]) for r in ddp_log if "loss" in r]
    single_loss = [(r["step"], r["loss"]) for r in single_log if "loss" in r]
    assert [s for s, _ in ddp_loss] == list(range(1, 7)) == [s for s, _ in single_loss]  # rank 0 alone logs
    assert [v for _, v in ddp_loss] == pytest.approx([v for _, v in single_loss], rel=1e-4)
    a = load_file(ddp_dir / "final" / "adapter_model.safetensors")
    b = load_file(single_dir / "final" / "adapter_model.safetensors")
    # Equal up to fp32 summation order (two ranks' gradients averaged vs one batch), which Adam's
    # normalisation amplifies for near-zero gradient entries: about 2e-4 on weights of size ~0.3.
    assert all(torch.allclose(a[k], b[k], atol=5e-4) for k in a)

    # One set of files, written once; each rank's RNG state is in the checkpoint for resuming.
    ckpt = ddp_dir / "checkpoint-6"
    assert {"rng_state_0.pth", "rng_state_1.pth", "adapter_model.safetensors", "trainer_state.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    assert sorted(p.name for p in ddp_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert not (ddp_dir / ".staging").exists()
    assert proc.stdout.count("trainable ") == 1  # the start summary comes from rank 0 only


def test_distributed_run_needs_an_output_dir(monkeypatch) -> None:
    from swiftune.errors import ConfigError
    from swiftune.recipes.sft import default_output_dir

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="--output-dir: required for a distributed run"):
        default_output_dir(SftArguments())
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert Path(default_output_dir(SftArguments())).parts[0] == "output"


@pytest.mark.slow
def test_accelerate_launch_runs_two_ranks(tmp_path_factory, tmp_path) -> None:
    """``accelerate launch -m swiftune sft``: the same Trainer DDP, started by accelerate's launcher."""
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists():
        pytest.skip("the accelerate command is not installed next to this Python")
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    model, data = ensure_model(root), ensure_data(root)
    out, digests = tmp_path / "acc", tmp_path / "digests"
    proc = run([str(launcher), "launch", "--multi-gpu", "--num-processes", "2", "--num-machines", "1",
                "--mixed-precision", "no", "--dynamo-backend", "no", "--main-process-port", "29533",
                "-m", "swiftune", "sft", "--model", str(model), "--dataset", f"{data}#16", "--max-steps", "2",
                "--save-steps", "2", "--val-ratio", "0", *flags(2), "--output-dir", str(out)],
               env={"SWIFTUNE_DIGEST_DIR": str(digests), "HF_HOME": str(tmp_path / "hf")},
               timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads((digests / f"digest-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2] and [r["global_step"] for r in records] == [2, 2]
    assert records[0]["final"] == records[1]["final"] != records[0]["initial"]
    assert [r["step"] for r in read_jsonl(out / "logging.jsonl") if "loss" in r] == [1, 2]
