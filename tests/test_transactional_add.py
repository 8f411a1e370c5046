"""A failed ``add_adapter`` / ``Swift.prepare`` / ``load_adapter`` leaves the model exactly as it was:
the same module objects in the same tree, the same tensors (values, dtypes, ``requires_grad``), the
same hooks and attributes, whatever the tuner's ``prepare_model`` and ``inject`` did before failing
(QLoRA quantizes every linear layer first)."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
import torch

from swiftune import Swift, SwiftModel, registries
from swiftune.errors import AdapterLoadError, ConfigError
from swiftune.testing import model_case
from swiftune.testing.conformance import logits_of

PLUGIN = "test_transactional_add"
CASE = model_case("llama")
BUILT_IN = ["lora", "qlora", "adapter", "prefix", "prompt", "side", "restuning", "part", "bitfit", "full", "peft"]
#: Configs that fail inside the tuner for a plain user mistake (a name that matches nothing).
TYPOS = {
    "lora": {"target_modules": ["q_projj"]},
    "qlora": {"target_modules": ["q_projj"]},
    "adapter": {"target_modules": ["mlpp"]},
    "side": {"target_modules": ["model.layerz.0"]},
    "restuning": {"target_modules": ["model.layerz.0"]},
    "part": {"target_parameters": ["q_projj.weight"]},
    "peft": {"peft_config": {"peft_type": "LORA", "r": 2, "target_modules": ["q_projj"]}},
}


def state(model: torch.nn.Module) -> dict[str, Any]:
    """Everything a failed add must not change, in comparable form."""
    return {
        "modules": [(n, id(m), type(m).__name__, m.training, sorted(vars(m))) for n, m in model.named_modules()],
        "hooks": [(n, len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()],
        "tensors": {
            n: (id(t), t.dtype, t.requires_grad, t.detach().clone())
            for n, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers()]
        },
        "config": model.config.to_dict() if hasattr(model, "config") else None,
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["modules"] == before["modules"], "the module tree changed"
    assert after["hooks"] == before["hooks"], "hooks were left behind"
    assert after["config"] == before["config"], "the model config changed"
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, (ident, dtype, grad, value) in before["tensors"].items():
        a_ident, a_dtype, a_grad, a_value = after["tensors"][name]
        assert (a_ident, a_dtype, a_grad) == (ident, dtype, grad), f"{name}: {(a_dtype, a_grad)} != {(dtype, grad)}"
        assert torch.equal(a_value, value), f"{name}: values changed"


def _fails_after_inject(tuner: str) -> type:
    """``tuner`` whose ``inject`` does all its work and then fails (e.g. a later check of the tuner)."""
    base = registries.tuners.get(tuner)
    name = f"late_failing_{tuner}"
    config = type(f"{name}_config", (base.config_class,),
                  {"__annotations__": {"tuner": Literal[name]}, "tuner": name, "peft_type": None})

    def inject(self, model):
        base.inject(self, model)
        raise ValueError("injected everything, then failed")

    return type(f"{name}_tuner", (base,), {"name": name, "config_class": config, "inject": inject})


@pytest.fixture(scope="module")
def late_failing():
    registries.tuners.names()
    for tuner in BUILT_IN:
        registries.tuners.add(_fails_after_inject(tuner), plugin=PLUGIN)
    yield lambda tuner: {"tuner": f"late_failing_{tuner}"}
    registries.tuners.remove_plugin(PLUGIN)


def _failing_configs(tuner: str, late_failing) -> list[dict[str, Any]]:
    configs = [late_failing(tuner)]
    if tuner in TYPOS:
        configs.append({"tuner": tuner, **TYPOS[tuner]})
    return configs


@pytest.mark.parametrize("tuner", BUILT_IN)
def test_failed_prepare_leaves_a_fresh_model_untouched(tuner, late_failing):
    model = CASE.build()
    for config in _failing_configs(tuner, late_failing):
        before = state(model)
        with pytest.raises(ConfigError):
            Swift.prepare(model, config)
        assert_same(before, state(model))
    assert all(p.requires_grad for p in model.parameters()), "a failed prepare froze the model"


@pytest.mark.parametrize("tuner", BUILT_IN)
def test_failed_add_adapter_leaves_the_swift_model_untouched(tuner, late_failing):
    # 'first' covers q_proj only: QLoRA would quantize the other linear layers before failing.
    first = {"tuner": "lora", "r": 2, "target_modules": ["q_proj"]}
    model = Swift.prepare(CASE.build(), {"first": first, "second": {"tuner": "bitfit"}})
    model.set_active_adapters(["first"])
    logits = logits_of(model, CASE)
    for config in _failing_configs(tuner, late_failing):
        before = state(model)
        with pytest.raises(ConfigError, match="adapter 'extra'"):
            model.add_adapter("extra", config)
        assert_same(before, state(model))
        assert list(model.tuners) == ["first", "second"] and model.active_adapters == ["first"]
    assert torch.equal(logits_of(model, CASE), logits)
    model.add_adapter("extra", {"tuner": tuner})  # the same name works after the failures
    assert "extra" in model.tuners


def test_failed_multi_adapter_prepare_rolls_back_the_adapters_before_it():
    model = CASE.build()
    before = state(model)
    with pytest.raises(ConfigError):
        Swift.prepare(model, {"a": {"tuner": "qlora", "r": 2}, "b": {"tuner": "lora", "target_modules": ["nope"]}})
    assert_same(before, state(model))


def test_failed_qlora_load_leaves_the_base_float(tmp_path):
    case = model_case("llama")
    Swift.prepare(case.build(), {"tuner": "qlora", "r": 2}).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**config, "r": 4}))  # shapes no longer fit
    swift = SwiftModel(case.build())
    before = state(swift)
    with pytest.raises(AdapterLoadError, match="shape mismatch"):
        swift.load_adapter(tmp_path)
    assert_same(before, state(swift))
    base = case.build()
    before = state(base)
    with pytest.raises(AdapterLoadError):
        Swift.from_pretrained(base, tmp_path)
    assert_same(before, state(base))
