"""Shared by the CLI tests: a tiny llama + tokenizer saved to a folder, a tiny chat dataset, and
a runner that calls the ``swiftune`` command as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import torch

SWIFTUNE_BIN = Path(sys.executable).with_name("swiftune")

#: Question -> answer pairs made of words the tiny tokenizer knows.
PAIRS = [
    ("Hello", "Hi there !"),
    ("How are you ?", "I am fine thanks"),
    ("What is the capital of France ?", "Paris"),
    ("Who made you ?", "I am made by the swiftune team"),
    ("Tell me a joke", "No"),
    ("What is your name ?", "my name is Swifty"),
    ("What is 2 + 3 ?", "five"),
    ("What is 3 + 4 ?", "seven"),
]


#: Two-turn dialogues whose second answer depends on the first turn (the chat test's proof that
#: the history reaches the model).
DIALOGUES = [
    [("Hello", "Hi there !"), ("Why ?", "Because I am fine")],
    [("Tell me a joke", "No"), ("Why ?", "Because no one is here")],
]


def save_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer llama with the tiny word-level tokenizer (ChatML template) in ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from swiftune.testing.tokenizers import tiny_tokenizer

    tok = tiny_tokenizer("chatml")
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False, initializer_range=0.3,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_chat_jsonl(path: Path, repeats: int = 4) -> Path:
    def turns(pairs):
        return [m for q, a in pairs for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]

    rows = [{"messages": turns([pair])} for _ in range(repeats) for pair in PAIRS]
    rows += [{"messages": turns(dialogue)} for _ in range(repeats) for dialogue in DIALOGUES]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SWIFTUNE_BIN)] if SWIFTUNE_BIN.exists() else [sys.executable, "-m", "swiftune"]
    return run(cmd + list(args), env=env, timeout=timeout, cwd=cwd)


def run(cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


#: A short, fast, memorising run on the tiny model (fp32: the same numbers on every CPU).
TRAIN_FLAGS = [
    "--per-device-train-batch-size", "4", "--gradient-accumulation-steps", "1", "--learning-rate", "2e-2",
    "--lr-scheduler-type", "constant", "--warmup-steps", "0", "--precision", "fp32", "--logging-steps", "1",
    "--seed", "0",
]


def ensure_model(root: Path) -> Path:
    folder = root / "tiny-model"
    if not (folder / "config.json").is_file():
        save_tiny_model(folder)
    return folder


def ensure_data(root: Path) -> Path:
    path = root / "chat.jsonl"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        write_chat_jsonl(path)
    return path


def ensure_trained(root: Path) -> Path:
    """An sft output folder whose adapter has memorised ``PAIRS`` (trained once per test session)."""
    run_dir = root / "trained-run"
    if not (run_dir / "final" / "adapter_config.json").is_file():
        model, data = ensure_model(root), ensure_data(root)
        proc = run_cli("sft", "--model", str(model), "--dataset", str(data), "--output-dir", str(run_dir),
                       "--max-steps", "200", "--save-steps", "200", "--val-ratio", "0", "--lora-alpha", "16",
                       "--overwrite-output-dir", *TRAIN_FLAGS, "--lr-scheduler-type", "linear")
        assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir
