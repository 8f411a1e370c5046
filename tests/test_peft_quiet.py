"""PEFT loads a swiftune folder without warning ("Unexpected keyword arguments ['tuner'] ... upgrade
PEFT"), and swiftune still knows which tuner wrote it: ``tuner`` is left out of the file only where
the file's ``peft_type`` names that tuner anyway (``swiftune.peft_quiet``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

peft = pytest.importorskip("peft")

from tiny_lms import llama  # noqa: E402

from swiftune import Swift  # noqa: E402
from swiftune.peft_quiet import with_implied_tuner, without_implied_tuner  # noqa: E402
from swiftune.serialization import CONFIG_NAME, read_adapter_config  # noqa: E402


def _logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.arange(7).reshape(1, 7) % 64
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("fields", [{}, {"use_dora": True}], ids=["lora", "dora"])
def test_peft_loads_a_swiftune_lora_folder_without_a_warning(tmp_path: Path, fields):
    swift = Swift.prepare(llama(), {"tuner": "lora", "r": 4, "target_modules": ["q_proj", "v_proj"], **fields})
    for p in swift.adapter_state_dict("default").values():
        p.add_(0.1)  # a non-zero update, so the logits below prove the weights loaded
    swift.save_pretrained(tmp_path)
    ours = _logits(swift)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs = peft.PeftModel.from_pretrained(llama(), str(tmp_path))
    unexpected = [str(w.message) for w in caught if "Unexpected keyword" in str(w.message)]
    assert not unexpected, unexpected
    torch.testing.assert_close(_logits(theirs), ours, atol=1e-5, rtol=0)

    assert "tuner" not in json.loads((tmp_path / CONFIG_NAME).read_text())
    assert read_adapter_config(tmp_path)["tuner"] == "lora"
    again = Swift.from_pretrained(llama(), tmp_path)
    assert again.configs["default"].tuner == "lora"
    assert again.configs["default"].use_dora is bool(fields)
    torch.testing.assert_close(_logits(again), ours, atol=1e-5, rtol=0)


def test_a_file_another_tuner_would_claim_keeps_its_tuner():
    # QLoRA writes PEFT's LoRA files, which plain LoRA claims: its name must stay in the file.
    qlora = {"tuner": "qlora", "peft_type": "LORA", "r": 4}
    assert without_implied_tuner(qlora) == qlora
    lora = {"tuner": "lora", "peft_type": "LORA", "r": 4}
    assert without_implied_tuner(lora) == {"peft_type": "LORA", "r": 4}
    assert with_implied_tuner(without_implied_tuner(lora)) == lora
    # PEFT types no tuner claims go to the PEFT fallback tuner (the bridge), so its name is implied too.
    loha = {"tuner": "peft", "peft_type": "LOHA", "target_modules": ["q_proj"]}
    assert "tuner" not in without_implied_tuner(loha)
    # Formats that are not PEFT's keep the tuner always.
    assert without_implied_tuner({"tuner": "full"}) == {"tuner": "full"}
