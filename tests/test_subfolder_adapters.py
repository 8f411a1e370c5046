"""Loading an adapter folder loads that adapter only; adapters in its subfolders only when asked for.

A folder that held another adapter in a subfolder used to load both and make both active (the
outputs silently changed; NaN logits in one report).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from swiftune import AdapterLoadError, ConfigError, Swift  # noqa: E402
from tiny_lms import llama  # noqa: E402

IDS = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def lora(seed: int, modules: list[str]) -> Swift:
    torch.manual_seed(seed)
    return Swift.prepare(llama(), {"tuner": "lora", "r": 4, "target_modules": modules, "init_lora_weights": False})


@pytest.fixture
def nested(tmp_path: Path) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """An adapter at the root and another one (other modules, other weights) in ``extra/``."""
    outer, inner = lora(1, ["q_proj", "v_proj"]), lora(2, ["o_proj"])
    outer.save_pretrained(tmp_path)
    inner.save_pretrained(tmp_path / "extra")
    return tmp_path, logits(outer), logits(inner)


def test_a_folder_loads_its_own_adapter_only(nested) -> None:
    path, outer, _ = nested
    loaded = Swift.from_pretrained(llama(), path)
    assert list(loaded.tuners) == ["default"] and loaded.active_adapters == ["default"]
    torch.testing.assert_close(logits(loaded), outer, rtol=0, atol=1e-6)


def test_a_subfolder_adapter_when_asked_for(nested) -> None:
    path, outer, inner = nested
    loaded = Swift.from_pretrained(llama(), path, subfolder="extra")
    assert list(loaded.tuners) == ["extra"] and loaded.active_adapters == ["extra"]
    torch.testing.assert_close(logits(loaded), inner, rtol=0, atol=1e-6)
    renamed = Swift.from_pretrained(llama(), path, subfolder="extra", adapter_name="chat")
    assert list(renamed.tuners) == ["chat"]
    both = Swift.from_pretrained(llama(), path, adapter_names=["default", "extra"])
    assert both.active_adapters == ["default", "extra"]
    both.set_active_adapters(["default"])
    torch.testing.assert_close(logits(both), outer, rtol=0, atol=1e-6)


def test_several_saved_adapters_round_trip_when_named(tmp_path: Path) -> None:
    swift = lora(1, ["q_proj"])
    swift.add_adapter("chat", {"tuner": "lora", "r": 2, "target_modules": ["v_proj"], "init_lora_weights": False})
    swift.save_pretrained(tmp_path)
    loaded = Swift.from_pretrained(llama(), tmp_path, adapter_names=["default", "chat"])
    torch.testing.assert_close(logits(loaded), logits(swift), rtol=0, atol=1e-6)
    with pytest.raises(AdapterLoadError, match=r"'other'.*holds adapters 'default' \(the root\), 'chat'"):
        Swift.from_pretrained(llama(), tmp_path, adapter_names=["default", "other"])
    with pytest.raises(ConfigError, match="adapter_names"):
        Swift.from_pretrained(llama(), tmp_path, adapter_name="x", adapter_names=["chat"])


def test_a_folder_with_adapters_only_in_subfolders_says_how_to_ask(tmp_path: Path) -> None:
    lora(1, ["q_proj"]).save_pretrained(tmp_path / "a")
    lora(2, ["v_proj"]).save_pretrained(tmp_path / "b")
    with pytest.raises(AdapterLoadError, match=r"only in its subfolders a, b.*subfolder='a'.*adapter_names"):
        Swift.from_pretrained(llama(), tmp_path)
