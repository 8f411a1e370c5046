"""``adapter_config.json`` names the base model it was trained on (``base_model_name_or_path``),
as PEFT writes it, for every tuner: ``infer --adapter`` and PEFT read it to find the base."""

from __future__ import annotations

import json

import pytest

from swiftune import Swift
from swiftune.testing import model_case


@pytest.mark.parametrize("config", [{"tuner": "lora", "r": 2}, {"tuner": "prompt", "num_virtual_tokens": 2},
                                    {"tuner": "adapter"}])
def test_base_model_name_is_written_and_reloads(tmp_path, config):
    base = model_case("llama").build()
    base.config._name_or_path = "org/tiny-llama"
    model = Swift.prepare(base, config)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "org/tiny-llama"
    again = Swift.from_pretrained(model_case("llama").build(), tmp_path)
    assert again.configs["default"].tuner == config["tuner"]


def test_explicit_value_wins_and_unknown_base_writes_none(tmp_path):
    base = model_case("llama").build()
    base.config._name_or_path = "org/tiny-llama"
    Swift.prepare(base, {"tuner": "lora", "r": 2, "base_model_name_or_path": "my/base"}).save_pretrained(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["base_model_name_or_path"] == "my/base"
    Swift.prepare(model_case("mlp").build(), {"tuner": "lora", "r": 2}).save_pretrained(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "adapter_config.json").read_text()).get("base_model_name_or_path") is None
