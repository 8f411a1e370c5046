"""Loading is safe and strict: no pickle, no odd adapter names, no silent partial loads."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

transformers = pytest.importorskip("transformers")

from swiftune import AdapterLoadError, ConfigError, Swift, SwiftModel  # noqa: E402
from swiftune.serialization import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402
from swiftune.tuners.lora.layer import LoraLayer  # noqa: E402
from tiny_lms import llama, qwen2  # noqa: E402

PREFIX = "base_model.model."
Q0 = "model.layers.0.self_attn.q_proj"
IDS = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def lora(**fields: Any) -> dict[str, Any]:
    return {"tuner": "lora", "init_lora_weights": False, **fields}


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


def saved_adapter(path: Path, make=llama, **fields: Any) -> Path:
    Swift.prepare(make(), lora(**{"target_modules": ["q_proj", "v_proj"], **fields})).save_pretrained(path)
    return path


# -- pickle files ---------------------------------------------------------------------------------
class _Tripwire:
    """Unpickling this creates a file: proof that the loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("filename", ["adapter_model.bin", "adapter_model.pt"])
def test_pickle_weights_are_refused_without_unpickling(filename: str, tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path / "adapter")
    (folder / WEIGHTS_NAME).unlink()
    marker = tmp_path / "unpickled"
    torch.save({"trap": _Tripwire(marker), "w": torch.zeros(2)}, folder / filename)

    model = llama()
    with pytest.raises(AdapterLoadError) as info:
        Swift.from_pretrained(model, folder)
    message = str(info.value)
    assert filename in message and "pickle" in message and "safetensors" in message
    assert not marker.exists()
    assert not has_lora(model)  # nothing half-injected is left behind

    swift = SwiftModel(llama())
    with pytest.raises(AdapterLoadError, match="pickle"):
        swift.load_adapter(folder, "other")
    assert not marker.exists() and swift.tuners == {} and not has_lora(swift)


def test_folder_without_weights(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path)
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(AdapterLoadError, match=WEIGHTS_NAME):
        Swift.from_pretrained(llama(), folder)


def test_broken_config_json_names_the_file(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path)
    (folder / CONFIG_NAME).write_text("{not json")
    with pytest.raises(AdapterLoadError, match=CONFIG_NAME):
        Swift.from_pretrained(llama(), folder)


# -- adapter names --------------------------------------------------------------------------------
BAD_NAMES = ["../x", "a/b", "", "1abc", "a b", "a.b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_adapter_names_are_rejected(name: str, tmp_path: Path) -> None:
    cfg = lora(target_modules=["q_proj"])
    with pytest.raises(ConfigError, match="adapter name"):
        Swift.prepare(llama(), cfg, adapter_name=name)
    with pytest.raises(ConfigError, match="adapter name"):
        Swift.prepare(llama(), {"ok": cfg, name: cfg})
    swift = Swift.prepare(llama(), cfg)
    with pytest.raises(ConfigError, match="adapter name"):
        swift.add_adapter(name, cfg)
    assert list(swift.tuners) == ["default"]
    with pytest.raises(ConfigError):
        swift.save_pretrained(tmp_path / "out", adapter_names=[name])
    folder = saved_adapter(tmp_path / "good")
    with pytest.raises(ConfigError, match="adapter name"):
        Swift.from_pretrained(llama(), folder, adapter_name=name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]  # nothing written anywhere else


def test_plain_identifiers_are_accepted(tmp_path: Path) -> None:
    swift = Swift.prepare(llama(), {"chat": lora(target_modules=["q_proj"]), "_x2": lora(target_modules=["v_proj"])})
    swift.save_pretrained(tmp_path)
    assert (tmp_path / "chat" / WEIGHTS_NAME).is_file() and (tmp_path / "_x2" / WEIGHTS_NAME).is_file()


def test_folders_not_named_like_adapters_are_not_loaded(tmp_path: Path) -> None:
    """An sft run folder holds checkpoint-N/ next to the adapters: those are never taken as adapters."""
    saved_adapter(tmp_path / "checkpoint-2")
    with pytest.raises(AdapterLoadError, match="checkpoint-2"):
        Swift.from_pretrained(llama(), tmp_path)
    with pytest.raises(ConfigError, match="adapter_name"):
        Swift.from_pretrained(llama(), tmp_path, subfolder="checkpoint-2")
    saved_adapter(tmp_path / "chat")
    assert list(Swift.from_pretrained(llama(), tmp_path, subfolder="chat").tuners) == ["chat"]
    assert list(Swift.from_pretrained(llama(), tmp_path, subfolder="checkpoint-2", adapter_name="ck").tuners) == ["ck"]


# -- strict loading -------------------------------------------------------------------------------
def _edit_weights(folder: Path, edit) -> None:
    state = load_file(str(folder / WEIGHTS_NAME))
    edit(state)
    save_file(state, str(folder / WEIGHTS_NAME))


def _edit_config(folder: Path, **changes: Any) -> None:
    data = json.loads((folder / CONFIG_NAME).read_text())
    data.update(changes)
    (folder / CONFIG_NAME).write_text(json.dumps(data))


def _assert_clean_failure(swift: SwiftModel, folder: Path, name: str, *patterns: str) -> None:
    """Loading fails with every pattern in the message and leaves ``swift`` as it was."""
    before_logits = logits(swift)
    before_state = {k: v.clone() for k, v in swift.model.state_dict().items()}
    before_adapters = dict(swift.tuners)
    with pytest.raises(AdapterLoadError) as info:
        swift.load_adapter(folder, name)
    for pattern in patterns:
        assert pattern in str(info.value), (pattern, str(info.value))
    assert swift.tuners == before_adapters and name not in swift.active_adapters
    after_state = swift.model.state_dict()
    assert set(after_state) == set(before_state)
    for key, value in before_state.items():
        assert torch.equal(after_state[key], value), key
    torch.testing.assert_close(logits(swift), before_logits, atol=0, rtol=0)


def test_other_rank_is_a_shape_error(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path, r=8)
    _edit_config(folder, r=4)
    _assert_clean_failure(SwiftModel(llama()), folder, "default", Q0, "(8, 32)", "(4, 32)")


def test_other_base_model_is_a_shape_error(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path, r=8)
    swift = Swift.prepare(llama(hidden=48), lora(target_modules=["k_proj"]), adapter_name="keep")
    _assert_clean_failure(swift, folder, "default", Q0, "(8, 32)", "(8, 48)")
    assert swift.active_adapters == ["keep"] and has_lora(swift)


def test_missing_key_is_an_error(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path)
    key = f"{PREFIX}model.layers.1.self_attn.v_proj.lora_B.weight"
    _edit_weights(folder, lambda s: s.pop(key))
    _assert_clean_failure(SwiftModel(llama()), folder, "default", key, "model.layers.1.self_attn.v_proj", "missing")


def test_unexpected_key_is_an_error(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path)
    key = f"{PREFIX}model.layers.0.mlp.up_proj.lora_A.weight"
    _edit_weights(folder, lambda s: s.__setitem__(key, torch.zeros(8, 32)))
    _assert_clean_failure(SwiftModel(llama()), folder, "default", key, "unexpected")


@pytest.mark.parametrize("fault", ["shape", "unexpected"])
def test_failed_load_does_not_touch_base_biases(fault: str, tmp_path: Path) -> None:
    """With bias='all' the adapter carries base biases; a bad file must change none of them."""
    folder = saved_adapter(tmp_path, make=qwen2, bias="all")
    if fault == "shape":
        key, value = f"{PREFIX}model.layers.1.self_attn.v_proj.lora_B.weight", torch.zeros(3, 3)
        patterns: tuple[str, ...] = ("(3, 3)", "(16, 8)")
    else:  # found only after every expected key was read
        key, value, patterns = f"{PREFIX}model.layers.0.mlp.up_proj.lora_A.weight", torch.zeros(8, 32), ("unexpected",)
    _edit_weights(folder, lambda s: s.__setitem__(key, value))
    swift = SwiftModel(qwen2())
    with torch.no_grad():
        for name, p in swift.model.named_parameters():
            if name.endswith("bias"):
                p.add_(1.0)  # the file holds the original biases: a partial load would show
    _assert_clean_failure(swift, folder, "default", key, *patterns)


def test_modules_to_save_shape_mismatch(tmp_path: Path) -> None:
    folder = saved_adapter(tmp_path, modules_to_save=["lm_head"])
    key = f"{PREFIX}lm_head.weight"
    _edit_weights(folder, lambda s: s.__setitem__(key, torch.zeros(10, 32)))
    _assert_clean_failure(SwiftModel(llama()), folder, "default", "lm_head", "(10, 32)", "(64, 32)")


def test_good_adapter_still_loads_after_a_failure(tmp_path: Path) -> None:
    good = saved_adapter(tmp_path / "good")
    bad = saved_adapter(tmp_path / "bad")
    _edit_config(bad, r=2)
    swift = SwiftModel(llama())
    with pytest.raises(AdapterLoadError):
        swift.load_adapter(bad, "default")
    swift.load_adapter(good, "default")  # the failed name is free again
    expected = Swift.prepare(llama(), lora(target_modules=["q_proj", "v_proj"]))
    expected.load_adapter(good, "x")
    expected.set_active_adapters("x")
    torch.testing.assert_close(logits(swift), logits(expected), atol=1e-6, rtol=0)
