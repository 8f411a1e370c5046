"""Capability flags answer per adapter: the class attributes are defaults, a tuner whose behaviour
depends on its config says so through ``Tuner.capabilities(config)``, and ``tuner.<flag>`` on an
instance gives that adapter's answer. Tuners that only set class attributes keep working."""

from __future__ import annotations

from typing import Literal

import pytest

from swiftune import Swift, registries
from swiftune.testing import conformance_cases, model_case
from swiftune.testing.conformance import run_check
from swiftune.tuner import Capabilities, Tuner
from swiftune.tuners.lora import Lora, LoraConfig

PLUGIN = "test_capabilities"


@pytest.mark.parametrize("bias, trains_base", [("none", False), ("all", True), ("lora_only", True)])
def test_lora_bias_mode_decides_trains_base_parameters(bias, trains_base):
    config = LoraConfig(bias=bias)
    assert Lora.capabilities(config).trains_base_parameters is trains_base
    assert Lora("default", config).trains_base_parameters is trains_base
    model = Swift.prepare(model_case("mlp").build(), {"tuner": "lora", "bias": bias})
    tuner = model.tuners["default"]
    assert tuner.trains_base_parameters is trains_base
    base_ids = {id(p) for n, p in model.model.named_parameters() if "lora_" not in n}
    assert any(id(p) in base_ids for _, p in tuner.named_trainable_parameters(model.model)) is trains_base


def test_lora_identity_follows_its_init():
    assert Lora.capabilities(LoraConfig()).identity_at_init
    assert not Lora.capabilities(LoraConfig(init_lora_weights=False)).identity_at_init


def test_capabilities_list_every_flag_with_class_defaults():
    caps = Tuner.capabilities.__func__(Lora, LoraConfig())  # the base rule: the class attributes
    assert caps == Capabilities.of_class(Lora)
    assert set(caps.as_dict()) == set(Capabilities.names())
    assert caps.mergeable and caps.peft_compatible and not caps.prompt_learning


def _legacy_tuner(name: str, **flags) -> type[Lora]:
    """A third-party tuner written before ``capabilities``: flags are class attributes only."""
    config = type(f"{name}_config", (LoraConfig,),
                  {"__annotations__": {"tuner": Literal[name]}, "tuner": name, "peft_type": None})
    return type(f"{name}_tuner", (Lora,), {"name": name, "config_class": config,
                                           "capabilities": classmethod(Tuner.capabilities.__func__), **flags})


@pytest.fixture
def register():
    registries.tuners.names()

    def add(cls: type[Tuner]) -> str:
        registries.tuners.add(cls, plugin=PLUGIN)
        return cls.name

    yield add
    registries.tuners.remove_plugin(PLUGIN)


def test_class_attribute_flags_still_work(register):
    name = register(_legacy_tuner("legacy_flags", mergeable=False, trains_base_parameters=True))
    tuner = registries.tuners.get(name)(name, registries.tuners.get(name).config_class())
    assert tuner.mergeable is False and tuner.trains_base_parameters is True
    skipped = {c.check: c.skip_reason() for c in conformance_cases([name], models=["mlp"])}
    assert skipped["two_adapters"] and "trains base parameters" in skipped["two_adapters"]
    run_check("merge", {"tuner": name}, model_case("mlp"))  # the refused-merge path, from the class flag


def test_property_flag_is_left_to_the_property(register):
    name = register(_legacy_tuner("property_flags", mergeable=property(lambda self: self.config.r > 2)))
    cls = registries.tuners.get(name)
    assert cls(name, cls.config_class(r=4)).mergeable is True
    assert cls(name, cls.config_class(r=1)).mergeable is False


def test_conformance_reads_the_adapters_flags_not_the_class():
    cases = {c.check: c for c in conformance_cases(["lora"], models=["gpt2"], config={"bias": "all"})}
    assert "trains base parameters" in cases["two_adapters"].skip_reason()
    for check in ("only_adapter_trains", "disable", "merge", "generate", "save_load"):
        cases[check].run()


def test_a_tuner_whose_flags_ignore_its_config_is_caught(register):
    """The suite fails a tuner that claims identity at init for a config that is not."""
    name = register(_legacy_tuner("claims_identity"))
    with pytest.raises(AssertionError, match="right after adding"):
        run_check("identity", {"tuner": name, "init_lora_weights": False}, model_case("mlp"))
