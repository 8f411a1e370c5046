"""Which tuner loads a plain PEFT adapter (an ``adapter_config.json`` without ``tuner``): claims by
``peft_type`` are deterministic, built-ins keep theirs, a variant claims by field values without
taking the plain type, and conflicts show in ``swiftune plugins``."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import pytest

from swiftune import Swift
from swiftune.cli.plugins_cmd import run_plugins
from swiftune.errors import ConfigError
from swiftune.peft_claims import claim_conflicts, tuner_for_peft_config
from swiftune.swift_model import config_from_disk
from swiftune.testing import model_case
from swiftune.tuners.lora import Lora, LoraConfig
from tuner_plugins import plugin  # noqa: F401 - the fixture

LORA_FILE = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["fc1"]}


def _lora_like(name: str, peft_type: str | None, claim: dict[str, Any] | None = None) -> type[Lora]:
    attrs: dict[str, Any] = {"__annotations__": {"tuner": Literal[name]}, "tuner": name, "peft_type": peft_type}
    if claim is not None:
        attrs["peft_claim_fields"] = claim
        attrs["__annotations__"]["peft_claim_fields"] = ClassVar[dict]
    config = type(f"{name}_config", (LoraConfig,), attrs)
    return type(f"{name}_tuner", (Lora,), {"name": name, "config_class": config})


@pytest.mark.parametrize("name", ["alora", "zlora"])  # before and after 'lora' in alphabetical order
def test_builtin_keeps_its_peft_type(plugin, name, tmp_path):
    plugin(f"{name}_plugin", _lora_like(name, "LORA"))
    assert tuner_for_peft_config(LORA_FILE) == "lora"
    assert config_from_disk(LORA_FILE).tuner == "lora"
    Swift.prepare(model_case("mlp").build(), {"tuner": "lora", "r": 2}).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({k: v for k, v in data.items() if k != "tuner"}))
    assert Swift.from_pretrained(model_case("mlp").build(), tmp_path).tuners["default"].name == "lora"


def test_conflict_is_reported_by_swiftune_plugins(plugin, capsys):
    plugin("zlora_plugin", _lora_like("zlora", "LORA"))
    run_plugins(as_json=True)
    report = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    warning = " ".join(report["zlora_plugin"]["warnings"])
    assert "LORA" in warning and "'lora'" in warning and "built-in" in warning
    assert report["zlora_plugin"]["status"] == "ok" and not report["lora"]["warnings"]
    run_plugins()
    text = capsys.readouterr().out
    line = next(row for row in text.splitlines() if row.startswith("zlora_plugin"))
    assert "peft_type 'LORA'" in line and "'lora'" in line
    assert "1 peft_type claim conflict" in text.splitlines()[-1]


def test_variant_claims_by_field_without_taking_the_plain_type(plugin):
    plugin("dora_plugin", _lora_like("dora_variant", "LORA", {"use_dora": True}))
    assert tuner_for_peft_config(LORA_FILE) == "lora"
    assert tuner_for_peft_config({**LORA_FILE, "use_dora": False}) == "lora"
    assert tuner_for_peft_config({**LORA_FILE, "use_dora": True}) == "dora_variant"
    assert config_from_disk({**LORA_FILE, "use_dora": True}).tuner == "dora_variant"
    assert not claim_conflicts(), "a variant claim is no conflict"


def test_equal_third_party_claims_refuse_to_guess(plugin):
    plugin("vera_a", _lora_like("vera_a", "VERA"))
    plugin("vera_b", _lora_like("vera_b", "VERA"))
    with pytest.raises(ConfigError, match=r"vera_a.*vera_b|vera_b.*vera_a") as info:
        config_from_disk({"peft_type": "VERA", "r": 2}, source="some/adapter")
    assert "some/adapter" in str(info.value) and "tuner" in str(info.value)
    conflicts = claim_conflicts()
    assert set(conflicts) == {"vera_a", "vera_b"} and "VERA" in conflicts["vera_a"][0]


def test_a_file_naming_its_tuner_is_not_routed(plugin):
    plugin("zlora_plugin", _lora_like("zlora", "LORA"))
    assert config_from_disk({**LORA_FILE, "tuner": "zlora"}).tuner == "zlora"


def test_unclaimed_type_goes_to_the_peft_bridge():
    assert tuner_for_peft_config({"peft_type": "LOHA"}) is None
    assert config_from_disk({"peft_type": "LOHA", "r": 2, "target_modules": ["fc1"]}).tuner == "peft"
