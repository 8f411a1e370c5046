"""``--deepspeed zero2|zero3``: the shipped presets, and ZeRO-2 / ZeRO-3 runs where DeepSpeed is installed.

DeepSpeed is not a dependency (its sdist builds against the installed torch), so the end-to-end
tests skip without it; they pass on CPU (gloo, DeepSpeed's CPU accelerator) in a venv that has it,
see docs/distributed.md.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

import swiftune
from swiftune.cli.args import parse_command
from swiftune.errors import ConfigError
from swiftune.recipes.arguments import SftArguments
from swiftune.recipes.deepspeed_presets import deepspeed_presets, resolve_deepspeed

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, read_jsonl, run


def test_presets_by_name_path_and_unknown_name(tmp_path) -> None:
    presets = deepspeed_presets()
    assert {"zero2", "zero3", "zero2_offload", "zero3_offload"} <= set(presets)
    for name, path in presets.items():
        config = json.loads(path.read_text())
        stage = config["zero_optimization"]["stage"]
        assert stage == int(name[4]), name
        # The Trainer fills these from the run's flags: a preset never contradicts them.
        assert all(config[k] == "auto" for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                                                  "gradient_clipping", "train_batch_size"))
        assert config["bf16"]["enabled"] == config["fp16"]["enabled"] == "auto"
        assert (config["zero_optimization"]["offload_optimizer"]["device"] == "cpu") == name.endswith("_offload")
    assert json.loads(presets["zero3"].read_text())["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
    assert resolve_deepspeed("zero3") == str(presets["zero3"])
    own = tmp_path / "ds.json"
    own.write_text("{}")
    assert resolve_deepspeed(str(own)) == str(own)
    assert resolve_deepspeed(None) is None
    with pytest.raises(ConfigError, match="unknown preset 'zero4'; use one of zero2, zero2_offload, zero3"):
        resolve_deepspeed("zero4")
    with pytest.raises(ConfigError, match="config file missing.json does not exist"):
        resolve_deepspeed("missing.json")


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_deepspeed_two_processes_train_and_save_like_one(preset, tmp_path_factory, tmp_path) -> None:
    pytest.importorskip("deepspeed")
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    model, data = ensure_model(root), ensure_data(root)
    common = ["--model", str(model), "--dataset", str(data), "--max-steps", "4", "--save-steps", "4",
              "--val-ratio", "0", *TRAIN_FLAGS]
    flags = list(common)
    flags[flags.index("--per-device-train-batch-size") + 1] = "2"
    ds_dir, single_dir, digests = tmp_path / "ds", tmp_path / "single", tmp_path / "digests"
    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "swiftune", "sft", *flags, "--deepspeed", preset, "--output-dir", str(ds_dir)],
               env={"SWIFTUNE_DIGEST_DIR": str(digests)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    swiftune.sft(parse_command(SftArguments, [*common, "--output-dir", str(single_dir)], prog="sft"))

    records = [json.loads((digests / f"digest-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    assert (records[0]["sharded"] > 0) == (preset == "zero3")  # ZeRO-3 partitions the parameters
    assert records[0]["final"] == records[1]["final"] != records[0]["initial"]
    ds_loss = [r["loss"] for r in read_jsonl(ds_dir / "logging.jsonl") if "loss" in r]
    single_loss = [r["loss"] for r in read_jsonl(single_dir / "logging.jsonl") if "loss" in r]
    assert len(ds_loss) == 4 and ds_loss == pytest.approx(single_loss, rel=1e-4)
    got = load_file(ds_dir / "final" / "adapter_model.safetensors")
    want = load_file(single_dir / "final" / "adapter_model.safetensors")
    assert set(got) == set(want)
    for key in want:  # whole tensors (ZeRO-3 gathered them to save), equal to one process's
        torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=1e-3)
