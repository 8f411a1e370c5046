"""Each registry the example plugin fills, used through swiftune's normal paths: the CLI listings,
``load_datasets`` by name, the template renderer and model-family matching."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swiftune import registries
from swiftune.data import DataError, load_datasets

SWIFTUNE = Path(sys.executable).with_name("swiftune")


def swiftune(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(SWIFTUNE)] if SWIFTUNE.exists() else [sys.executable, "-m", "swiftune"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize(("what", "name"), [("models", "zephyr"), ("templates", "zephyr"),
                                            ("datasets", "example-dialogues"), ("dataset-adapters", "dialogue-lines")])
def test_cli_lists_what_the_plugin_registered(what, name) -> None:
    proc = swiftune("list", what)
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines()]
    assert [name, "example_zoo"] in [r[:2] for r in rows], proc.stdout


def test_registered_dataset_loads_through_the_adapter() -> None:
    train, val = load_datasets(["example-dialogues"], seed=0)
    assert len(train) == 6 and val == []
    by_first = {ex["messages"][0]["content"]: ex["messages"] for ex in train}
    assert by_first["be brief"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "What is the capital of France ?"},
        {"role": "assistant", "content": "Paris"},
    ]
    assert [m["role"] for m in by_first["Tell me a joke"]] == ["user", "assistant", "user", "assistant"]
    sampled, _ = load_datasets(["example-dialogues#10"], seed=0)  # the usual name[#N] syntax
    assert len(sampled) == 10


def test_adapter_is_detected_from_columns_and_names_bad_lines(tmp_path) -> None:
    good = tmp_path / "mine.jsonl"
    good.write_text('{"dialogue": "User: Hi\\nBot: Hello !\\nstill the bot"}\n')
    (example,), _ = load_datasets([str(good)])
    assert example["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello !\nstill the bot"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"dialogue": "User: Hi\\nRobot: no"}\n')
    with pytest.raises(DataError, match="line 2"):
        load_datasets([str(bad)])


def test_template_renders_and_masks_only_answers() -> None:
    template = registries.templates.get("zephyr")
    chat = template.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    assert chat.text == "<|user|>\nHi</s>\n<|assistant|>\nHello</s>\n"
    (start, end), = chat.spans
    assert chat.text[start:end] == "Hello</s>"
    assert template.generation_prompt() == "<|assistant|>\n"


def test_family_is_picked_by_hub_id_and_its_parent_otherwise() -> None:
    from swiftune.loading import family_for

    config = {"architectures": ["MistralForCausalLM"], "model_type": "mistral"}
    assert family_for({**config, "_name_or_path": "HuggingFaceH4/zephyr-7b-beta"}).name == "zephyr"
    assert family_for({**config, "_name_or_path": "/models/zephyr-7b-alpha"}).name == "zephyr"
    assert family_for({**config, "_name_or_path": "mistralai/Mistral-7B-v0.1"}).name == "mistral"
    assert registries.models.get("zephyr").template == "zephyr"
