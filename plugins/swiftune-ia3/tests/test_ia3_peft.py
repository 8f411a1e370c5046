"""IA³ against PEFT's own implementation: same files, same logits, both ways, merged too."""

from __future__ import annotations

import json

import pytest
import torch

from swiftune import Swift
from swiftune.serialization import read_adapter_config
from swiftune.testing import conformance, model_case

peft = pytest.importorskip("peft")

LLAMA = {"target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"]}
GPT2 = {"target_modules": ["c_attn", "mlp.c_proj"], "feedforward_modules": ["mlp.c_proj"], "fan_in_fan_out": True}


def _random_vectors(model: torch.nn.Module) -> None:
    """Make every IA³ vector non-trivial (a trained adapter, without training)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ia3_l" in name:
                p.copy_(1 + 0.5 * torch.randn_like(p))


@pytest.mark.parametrize(("model", "fields"), [("llama", LLAMA), ("gpt2", GPT2)])
def test_swiftune_files_load_in_peft_with_the_same_logits(model, fields, tmp_path) -> None:
    case = model_case(model)
    swift = Swift.prepare(case.build(), {"tuner": "ia3", **fields})
    _random_vectors(swift)
    ours = conformance.logits_of(swift, case)
    swift.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    # No "tuner" in the file: its peft_type claim names ia3, and PEFT warns about keys it lacks.
    assert saved["peft_type"] == "IA3" and "tuner" not in saved
    assert read_adapter_config(tmp_path)["tuner"] == "ia3"
    loaded = peft.PeftModel.from_pretrained(case.build(), tmp_path)
    theirs = conformance.logits_of(loaded, case)
    base = conformance.logits_of(case.build(), case)
    conformance.assert_differ(ours, base, "IA³ vs base logits")
    conformance.assert_close(theirs, ours, "PEFT's logits vs swiftune's", atol=1e-5, rtol=1e-5)
    # Merging gives the same model in both libraries.
    ours_merged = conformance.logits_of(swift.merge_and_unload(), case)
    theirs_merged = conformance.logits_of(loaded.merge_and_unload(), case)
    conformance.assert_close(ours_merged, theirs_merged, "merged: swiftune vs PEFT", atol=1e-5, rtol=1e-5)
    conformance.assert_close(ours_merged, ours, "merged vs unmerged", atol=1e-4, rtol=1e-4)


def test_peft_files_load_in_swiftune_with_the_same_logits(tmp_path) -> None:
    case = model_case("llama")
    model = peft.get_peft_model(case.build(), peft.IA3Config(**LLAMA))
    _random_vectors(model)
    theirs = conformance.logits_of(model, case)
    model.save_pretrained(tmp_path)
    assert "tuner" not in json.loads((tmp_path / "adapter_config.json").read_text())
    swift = Swift.from_pretrained(case.build(), tmp_path)
    assert swift.tuners["default"].name == "ia3"  # picked by peft_type, not the 'peft' bridge
    conformance.assert_close(conformance.logits_of(swift, case), theirs, "swiftune's logits vs PEFT's", atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["llama", "gpt2", "mlp"])
def test_ia3_memorises_at_its_learning_rate(model) -> None:
    """The suite's memorise check at IA³'s learning rate (vectors need a larger one than LoRA)."""
    case = model_case(model)
    swift = conformance.prepared({"tuner": "ia3"}, case)
    losses = conformance.train_steps(swift, case, conformance.MEMORISE_STEPS, seed=0, lr=0.2)
    assert losses[-1] < 0.5 * losses[0], f"loss went {losses[0]:.4f} -> {losses[-1]:.4f}"
    trained = [n for n, p in swift.named_parameters() if p.requires_grad]
    assert trained and all(".ia3_l." in n for n in trained)
