"""``TunerConfig``: JSON / YAML round trips and errors that name the tuner and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from swiftune import ConfigError, Swift, TunerConfig, UnknownNameError, parse_config
from swiftune.swift_model import config_from_disk
from swiftune.tuners.lora import LoraConfig

FULL = LoraConfig(
    r=4, lora_alpha=16, lora_dropout=0.1, use_rslora=True, bias="lora_only",
    target_modules=["q_proj", "v_proj"], exclude_modules=r".*\.0\..*", modules_to_save=["head"],
    layers_to_transform=[1, 3], layers_pattern="layers", init_lora_weights="gaussian",
)  # fmt: skip


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(4, 4)
        self.v_proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.v_proj(torch.relu(self.q_proj(x)))


# -- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        FULL,
        LoraConfig(),
        LoraConfig(target_modules=r".*proj", layers_to_transform=2, lora_alpha=0.5, init_lora_weights=False),
    ],
)
def test_json_and_yaml_round_trip(cfg: LoraConfig, tmp_path: Path) -> None:
    from_json = parse_config(json.loads(cfg.to_json()))
    from_yaml = TunerConfig.from_yaml(cfg.to_yaml())
    assert from_json == cfg and from_yaml == cfg
    assert type(from_json) is LoraConfig and type(from_yaml) is LoraConfig
    assert json.loads(cfg.to_json())["tuner"] == "lora" and yaml.safe_load(cfg.to_yaml())["tuner"] == "lora"
    (tmp_path / "c.json").write_text(cfg.to_json())
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    assert TunerConfig.from_file(tmp_path / "c.json") == cfg
    assert LoraConfig.from_file(tmp_path / "c.yaml") == cfg


def test_types_survive_the_round_trip() -> None:
    cfg = TunerConfig.from_yaml(FULL.to_yaml())
    assert cfg.r == 4 and cfg.lora_alpha == 16 and cfg.use_rslora is True
    assert cfg.target_modules == ["q_proj", "v_proj"] and cfg.exclude_modules == r".*\.0\..*"
    assert cfg.layers_to_transform == [1, 3] and cfg.init_lora_weights == "gaussian"
    assert cfg.scaling == pytest.approx(16 / 2)
    assert TunerConfig.from_yaml(LoraConfig(lora_alpha=0.5).to_yaml()).lora_alpha == 0.5


def test_disk_dict_is_peft_shaped() -> None:
    data = FULL.to_disk_dict()
    assert data["peft_type"] == "LORA" and data["tuner"] == "lora"
    assert config_from_disk(data) == FULL
    peft_only = {k: v for k, v in data.items() if k != "tuner"}  # PEFT's own files carry no 'tuner'
    assert config_from_disk(peft_only) == FULL


def test_peft_fields_we_cannot_honour_are_named() -> None:
    data = {**LoraConfig().to_disk_dict(), "peft_version": "0.21.2", "use_dora": False, "rank_pattern": {}}
    assert config_from_disk(data) == LoraConfig()  # informational or unset: dropped
    with pytest.raises(ConfigError, match="rank_pattern"):
        config_from_disk({**data, "rank_pattern": {"q_proj": 4}}, source="x/adapter_config.json")
    with pytest.raises(ConfigError, match="neither 'tuner' nor 'peft_type'"):
        config_from_disk({"r": 4}, source="x")


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [("r", 0), ("lora_dropout", 1.5), ("bias", "some"), ("lora_alpha", -1), ("init_lora_weights", "xavier"),
     ("target_modules", 5)],
)  # fmt: skip
def test_validation_errors_name_tuner_and_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"tuner": "lora", field: value})
    assert f"lora: {field}" in str(info.value)


def test_assignment_is_validated_too() -> None:
    cfg = LoraConfig()
    with pytest.raises(ConfigError, match="lora: r"):
        cfg.r = -2
    assert cfg.r == 8


def test_unknown_field_is_named() -> None:
    with pytest.raises(ConfigError, match="lora: rank: unknown field"):
        parse_config({"tuner": "lora", "rank": 4})
    with pytest.raises(ConfigError, match="rank"):
        LoraConfig.from_yaml("tuner: lora\nrank: 4\n")


def test_missing_tuner_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"r": 4})
    assert "'tuner'" in str(info.value) and "lora" in str(info.value)  # lists what is installed


def test_unknown_tuner_lists_installed_and_close_matches() -> None:
    with pytest.raises(UnknownNameError) as info:
        parse_config({"tuner": "lorra", "r": 4})
    message = str(info.value)
    assert "lorra" in message and "installed:" in message and "Did you mean: lora" in message


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "run.yaml"
    bad.write_text("tuner: lora\nr: 0\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: lora: r"):
        TunerConfig.from_file(bad)
    bad.write_text("tuner: [lora\n")
    with pytest.raises(ConfigError, match=r"run\.yaml"):
        TunerConfig.from_file(bad)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        TunerConfig.from_file(tmp_path / "missing.yaml")
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: .*mapping"):
        TunerConfig.from_file(bad)


def test_tuner_literal_cannot_be_changed() -> None:
    with pytest.raises(ConfigError, match="tuner: Input should be 'lora'"):
        LoraConfig.from_disk_dict({"tuner": "ia3", "r": 2})


# -- Swift.prepare config forms ---------------------------------------------------------------------
def test_prepare_accepts_object_dict_and_multi_adapter_mapping() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4)
    base = Tiny()
    expected = base(x)
    one = Swift.prepare(Tiny(), LoraConfig(target_modules=["q_proj"], r=2))
    assert list(one.tuners) == ["default"] and one.configs["default"].r == 2
    two = Swift.prepare(Tiny(), {"tuner": "lora", "target_modules": ["v_proj"]}, adapter_name="solo")
    assert list(two.tuners) == ["solo"]

    multi = Swift.prepare(
        base,
        {
            "a": {"tuner": "lora", "target_modules": ["q_proj"], "r": 2, "init_lora_weights": False},
            "b": LoraConfig(target_modules=["q_proj", "v_proj"], r=3, init_lora_weights=False),
        },
    )
    assert multi.active_adapters == ["a", "b"]
    assert multi.configs["a"].r == 2 and multi.configs["b"].r == 3
    assert (multi(x) - expected).abs().max() > 1e-3
    with multi.disable_adapters():
        torch.testing.assert_close(multi(x), expected, atol=0, rtol=0)


def test_prepare_errors_name_adapter_and_field() -> None:
    with pytest.raises(ConfigError, match="lora: r"):
        Swift.prepare(Tiny(), {"a": {"tuner": "lora", "r": 0}})
    with pytest.raises(ConfigError, match="adapter 'a'.*matched no"):
        Swift.prepare(Tiny(), {"a": {"tuner": "lora", "target_modules": ["nothing"]}})
    with pytest.raises(UnknownNameError, match="lora"):
        Swift.prepare(Tiny(), {"tuner": "lroa"})
