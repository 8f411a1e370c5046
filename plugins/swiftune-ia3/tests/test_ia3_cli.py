"""ia3 end to end, as a user runs it: installed, listed, trained with ``swiftune sft --tuner ia3``,
reloaded, and merged into the base by ``swiftune export``. Self-contained: the tiny model folder
and the chat data are made here (swiftune.testing's tiny tokenizer, a 2-layer llama)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from swiftune import Swift
from swiftune.serialization import read_adapter_config

SWIFTUNE = Path(sys.executable).with_name("swiftune")
PAIRS = [("Hello", "Hi there !"), ("How are you ?", "I am fine thanks"), ("What is your name ?", "my name is Swifty"),
         ("What is the capital of France ?", "Paris"), ("Tell me a joke", "No")]
FLAGS = ["--per-device-train-batch-size", "4", "--learning-rate", "5e-2", "--lr-scheduler-type", "constant",
         "--warmup-steps", "0", "--precision", "fp32", "--logging-steps", "1", "--seed", "0", "--val-ratio", "0"]


def swiftune(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(SWIFTUNE)] if SWIFTUNE.exists() else [sys.executable, "-m", "swiftune"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600, env=env)


def tiny_model_folder(folder: Path) -> Path:
    """A 2-layer llama plus the tiny word-level ChatML tokenizer, saved like a hub checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from swiftune.testing.tokenizers import tiny_tokenizer

    tok = tiny_tokenizer("chatml")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False, initializer_range=0.3)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ia3-cli")
    model = tiny_model_folder(root / "tiny-llama")
    data = root / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    run = root / "run"
    proc = swiftune("sft", "--tuner", "ia3", "--model", str(model), "--dataset", str(data), "--output-dir", str(run),
                    "--max-steps", "30", "--save-steps", "30", *FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"model": model, "run": run, "root": root}


def test_ia3_is_listed() -> None:
    proc = swiftune("list", "tuners")
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.split()[0] == "ia3"]
    assert line.split()[1] == "ia3"  # registered by the plugin (entry point) named ia3


@pytest.mark.slow
def test_sft_trains_ia3_and_saves_peft_files(trained) -> None:
    log = [json.loads(ln) for ln in (trained["run"] / "logging.jsonl").read_text().splitlines() if ln.strip()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 30 and sum(losses[-3:]) / 3 < 0.6 * losses[0], losses
    final = trained["run"] / "final"
    config = read_adapter_config(final)  # "tuner" is implied by the file's peft_type (PEFT stays quiet)
    assert config["tuner"] == "ia3" and config["peft_type"] == "IA3"
    from safetensors.torch import load_file

    tensors = load_file(final / "adapter_model.safetensors")
    assert tensors and all(k.startswith("base_model.model.") and k.endswith(".ia3_l") for k in tensors)
    assert any((t - 1).abs().max() > 1e-3 for t in tensors.values())  # trained away from the identity


@pytest.mark.slow
def test_reload_and_export_merge_into_the_base(trained) -> None:
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[2, 4, 11, 12, 5, 4, 13]])
    base = AutoModelForCausalLM.from_pretrained(trained["model"]).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = Swift.from_pretrained(AutoModelForCausalLM.from_pretrained(trained["model"]).eval(), trained["run"] / "final")
        adapted_logits = adapted(ids).logits
    assert (adapted_logits - base_logits).abs().max() > 1e-3
    merged_dir = trained["root"] / "merged"
    proc = swiftune("export", "--adapter", str(trained["run"]), "--model", str(trained["model"]), "--output", str(merged_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("ia3" in k for k in merged.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted_logits, atol=1e-4, rtol=1e-4)
