"""Trainability is a property of each adapter: ``is_trainable=False`` survives activation changes.

``Swift.from_pretrained(..., is_trainable=False)`` loads adapters for inference; switching adapters
or leaving ``disable_adapters()`` must not turn their gradients back on, while an adapter added for
training next to them keeps training.
"""

from __future__ import annotations

import pytest
import torch

from swiftune import Swift
from swiftune.errors import ConfigError
from swiftune.testing import model_case

LORA = {"tuner": "lora", "r": 2}


def _grad_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture
def saved(tmp_path):
    case = model_case("mlp")
    Swift.prepare(case.build(), LORA).save_pretrained(tmp_path)
    return tmp_path


def test_frozen_load_stays_frozen_through_activation_changes(saved):
    model = Swift.from_pretrained(model_case("mlp").build(), saved, is_trainable=False)
    assert not _grad_names(model)
    with model.disable_adapters():
        pass
    assert not _grad_names(model), "leaving disable_adapters() made a frozen adapter trainable"
    model.set_active_adapters(["default"])
    assert not _grad_names(model), "set_active_adapters made a frozen adapter trainable"
    assert model.trainable_summary().trainable == 0
    assert model.adapter_is_trainable("default") is False


def test_trainable_load_trains_and_new_adapter_trains_beside_a_frozen_one(saved):
    model = Swift.from_pretrained(model_case("mlp").build(), saved, is_trainable=True)
    assert _grad_names(model) and all("lora_" in n for n in _grad_names(model))
    frozen = Swift.from_pretrained(model_case("mlp").build(), saved)
    frozen.add_adapter("extra", LORA)
    frozen.set_active_adapters(["default", "extra"])
    grads = _grad_names(frozen)
    assert grads and all(".extra" in n for n in grads), sorted(grads)
    with frozen.disable_adapters():
        pass
    assert _grad_names(frozen) == grads


def test_trainability_can_be_switched_and_is_checked(saved):
    model = Swift.from_pretrained(model_case("mlp").build(), saved)
    model.set_adapter_trainable("default", True)
    assert _grad_names(model)
    model.set_adapter_trainable("default", False)
    assert not _grad_names(model)
    with pytest.raises(ConfigError, match="no adapter named 'nope'"):
        model.set_adapter_trainable("nope", True)
    second = Swift.prepare(model_case("mlp").build(), LORA)
    second.add_adapter("frozen", LORA, trainable=False)
    second.set_active_adapters(["default", "frozen"])
    assert _grad_names(second) and not any(".frozen" in n for n in _grad_names(second))


def test_frozen_adapter_gets_no_gradient_in_training(saved):
    case = model_case("mlp")
    model = Swift.from_pretrained(case.build(), saved)
    model.add_adapter("extra", LORA)
    model.set_active_adapters(["default", "extra"])
    before = {k: v.clone() for k, v in model.adapter_state_dict("default").items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    loss = case.loss(model, case.batch(0))
    loss.backward()
    opt.step()
    after = model.adapter_state_dict("default")
    assert all(torch.equal(after[k], v) for k, v in before.items())
