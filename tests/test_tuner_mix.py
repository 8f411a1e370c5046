"""Adapters of different tuners on one model: each switched on alone gives exactly what a model
holding only that adapter gives, disabling gives the base, and combinations that cannot work
together are refused when they are added."""

from __future__ import annotations

import pytest
import torch

from swiftune import Swift, registries
from swiftune.errors import ConfigError
from swiftune.testing import model_case

MIX = {
    "low_rank": {"tuner": "lora", "r": 4, "init_lora_weights": False},
    "bottleneck": {"tuner": "adapter"},
    "soft_prompt": {"tuner": "prompt", "num_virtual_tokens": 3},
}


def _require(*tuners: str) -> None:
    missing = [t for t in tuners if t not in registries.tuners.names()]
    if missing:
        pytest.skip(f"tuners not registered: {missing}")


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Give every trainable tensor non-trivial values, so no adapter is an identity by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        out = model(**batch.inputs)
    return out.logits[:, -batch.inputs["input_ids"].shape[1]:]  # drop virtual-token positions


@pytest.fixture
def mixed():
    _require(*(c["tuner"] for c in MIX.values()))
    case = model_case("llama")
    model = Swift.prepare(case.build(), dict(MIX))
    for i, name in enumerate(MIX):
        model.set_active_adapters([name])
        _perturb(model, seed=i)
    return case, model


def test_each_adapter_alone_equals_a_model_with_only_that_adapter(mixed, tmp_path):
    case, model = mixed
    batch = case.batch(0)
    model.save_pretrained(tmp_path, adapter_names=list(MIX))
    for name, cfg in MIX.items():
        model.set_active_adapters([name])
        alone = Swift.from_pretrained(case.build(), tmp_path / name)
        assert alone.active_adapters == ["default"] and alone.configs["default"].tuner == cfg["tuner"]
        torch.testing.assert_close(_logits(model, batch), _logits(alone, batch), rtol=0, atol=1e-6, msg=name)


def test_switching_and_disabling_are_exact(mixed):
    case, model = mixed
    batch = case.batch(0)
    base = _logits(case.build(), batch)
    per_adapter = {}
    for name in MIX:
        model.set_active_adapters([name])
        per_adapter[name] = _logits(model, batch)
        assert not torch.allclose(per_adapter[name], base, atol=1e-4), f"{name} changes nothing"
    model.set_active_adapters(list(MIX))
    together = _logits(model, batch)
    with model.disable_adapters():
        torch.testing.assert_close(_logits(model, batch), base, rtol=0, atol=0)
    torch.testing.assert_close(_logits(model, batch), together, rtol=0, atol=0)
    for name in reversed(MIX):  # switch back in another order: nothing leaks between adapters
        model.set_active_adapters([name])
        torch.testing.assert_close(_logits(model, batch), per_adapter[name], rtol=0, atol=0)
    model.set_active_adapters([])
    torch.testing.assert_close(_logits(model, batch), base, rtol=0, atol=0)


def test_two_prompt_learning_adapters_are_refused_at_prepare():
    _require("prompt", "prefix")
    case = model_case("llama")
    with pytest.raises(ConfigError, match="only one of them can be active"):
        Swift.prepare(case.build(), {"a": {"tuner": "prompt"}, "b": {"tuner": "prefix"}})
    model = Swift.prepare(case.build(), {"a": {"tuner": "prompt"}})
    model.add_adapter("b", {"tuner": "prefix"}, active=False)  # loaded side by side is fine
    with pytest.raises(ConfigError, match="'a' \\(prompt\\), 'b' \\(prefix\\)"):
        model.set_active_adapters(["a", "b"])
    assert model.active_adapters == ["a"]
