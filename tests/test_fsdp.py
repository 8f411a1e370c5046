"""FSDP2 with swiftune's tuners: 2 processes (gloo, CPU) train like one, and the adapter saves whole.

accelerate applies FSDP only on GPUs and other accelerators, so on CPU the Trainer's ``--fsdp``
cannot run (``swiftune sft`` refuses it rather than silently training DDP). What the Trainer does
under FSDP2 is ``fully_shard`` over each decoder layer and the model, then train, then gather the
shards to save: ``tests/fsdp_worker.py`` does exactly that with torch's own FSDP2, on a LoRA and on
a full fine-tuning model, and the saved weights must equal a one-process run's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cli_fixtures import run

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch built without distributed / gloo")

WORKER = Path(__file__).with_name("fsdp_worker.py")


def train(tuner: str, out: Path, processes: int) -> dict:
    out.mkdir(parents=True)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    proc = run([*(launcher if processes > 1 else [sys.executable]), str(WORKER), tuner, str(out)], timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "run.json").read_text())


def weights(folder: Path) -> dict[str, torch.Tensor]:
    (file,) = folder.rglob("*.safetensors")  # full fine-tuning writes model/model.safetensors
    return load_file(file)


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["lora", "full"])
def test_fsdp2_two_processes_save_what_one_process_trains(tuner, tmp_path) -> None:
    sharded, single = train(tuner, tmp_path / "fsdp", 2), train(tuner, tmp_path / "single", 1)
    assert sharded["world_size"] == 2 and single["world_size"] == 1
    assert sharded["sharded"] == sharded["trainable"] > 0  # every trained parameter was a DTensor shard
    assert sharded["losses"] == pytest.approx(single["losses"], rel=1e-5)
    got, want = weights(tmp_path / "fsdp" / "final"), weights(tmp_path / "single" / "final")
    initial = weights(tmp_path / "single" / "initial")
    assert set(got) == set(want) and got
    for key in want:
        assert got[key].shape == want[key].shape, key  # gathered whole, not a shard
        torch.testing.assert_close(got[key], want[key], atol=2e-5, rtol=1e-4)
    assert any(not torch.equal(want[k], initial[k]) for k in want)  # training changed the saved weights


def test_sft_refuses_fsdp_without_an_accelerator() -> None:
    from swiftune.errors import ConfigError
    from swiftune.recipes.sharding import check_fsdp_device

    with pytest.raises(ConfigError, match="--fsdp: accelerate runs FSDP only on GPUs"):
        check_fsdp_device("full_shard auto_wrap", has_accelerator=False)
    check_fsdp_device("full_shard auto_wrap", has_accelerator=True)
    check_fsdp_device(None, has_accelerator=False)
