"""The 'peft' bridge tuner: PEFT's own IA3, LoHa, LoKr and P-Tuning behind swiftune's API.

PEFT 0.21 is the oracle: adapters saved by swiftune load in ``peft.PeftModel.from_pretrained``
with equal logits, and adapters saved by PEFT load through ``Swift.from_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from swiftune import Swift  # noqa: E402
from swiftune.errors import ConfigError, NotMergeableError  # noqa: E402
from swiftune.serialization import CONFIG_NAME, read_adapter_config  # noqa: E402
from swiftune.testing import conformance_tests, model_case  # noqa: E402
from swiftune.testing.conformance import logits_of, train_steps  # noqa: E402
from swiftune.tuners.peft_bridge import PeftBridgeConfig  # noqa: E402

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, run_cli  # noqa: E402

ATOL = 1e-5
METHODS = {
    "ia3": {"peft_type": "IA3", "target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"]},
    "loha": {"peft_type": "LOHA", "target_modules": ["q_proj", "v_proj"], "r": 4, "alpha": 4},
    "lokr": {"peft_type": "LOKR", "target_modules": ["q_proj", "v_proj"], "r": 4, "alpha": 4},
    "ptuning": {"peft_type": "P_TUNING", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
}
CASE = model_case("llama")

# The whole conformance suite for non-default PEFT methods (the default, PEFT's LoRA, runs in test_conformance).
_LAYER_CHECKS = ["disable", "save_load", "merge", "two_adapters"]  # only_adapter_trains: see the tests below
test_conformance_ia3 = pytest.mark.slow(
    conformance_tests("peft", models=["llama"], config={"peft_config": METHODS["ia3"]}, checks=_LAYER_CHECKS)
)
test_conformance_loha = pytest.mark.slow(
    conformance_tests("peft", models=["llama"], config={"peft_config": METHODS["loha"]}, checks=_LAYER_CHECKS)
)
test_conformance_ptuning = pytest.mark.slow(
    conformance_tests("peft", models=["llama"], config={"peft_config": METHODS["ptuning"]},
                      checks=["identity", "save_load", "merge", "generate", "two_adapters"])
)  # fmt: skip


# -- swiftune -> PEFT ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", list(METHODS))
def test_bridge_trains_and_saves_peft_format(method, tmp_path):
    base = CASE.build()
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = Swift.prepare(base, {"tuner": "peft", "peft_config": METHODS[method]})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    own = {n for n, _ in model.tuners["default"].named_trainable_parameters(model.model)}
    assert trainable and {n.removeprefix("model.") for n in trainable} == own
    losses = train_steps(model, CASE, 8, seed=0, lr=3e-2)
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters() if n in before), "base weights changed"
    adapted = logits_of(model, CASE)
    model.save_pretrained(tmp_path)

    config = read_adapter_config(tmp_path)  # the tuner: written, or implied by peft_type
    assert config["peft_type"] == METHODS[method]["peft_type"] and config["tuner"] == "peft"
    peft_model = peft.PeftModel.from_pretrained(CASE.build(), tmp_path).eval()
    assert type(peft_model.peft_config["default"]).__name__ == type(model.tuners["default"].config.build()).__name__
    torch.testing.assert_close(logits_of(peft_model, CASE), adapted, atol=ATOL, rtol=0)

    loaded = Swift.from_pretrained(CASE.build(), tmp_path)
    assert loaded.tuners["default"].name == "peft" and loaded.configs["default"] == model.configs["default"]
    torch.testing.assert_close(logits_of(loaded, CASE), adapted, atol=ATOL, rtol=0)


# -- PEFT -> swiftune ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["loha", "lokr", "ptuning"])
def test_peft_saved_adapter_loads_through_the_bridge(method, tmp_path):
    """A PEFT folder without swiftune's "tuner" key: a peft_type no registered tuner claims routes it to
    the bridge (IA3 is not used here: the swiftune-ia3 example plugin, when installed, claims it)."""
    fields = {k: v for k, v in METHODS[method].items() if k != "peft_type"}
    peft_config = peft.get_peft_config({"peft_type": METHODS[method]["peft_type"], "task_type": "CAUSAL_LM", **fields})
    peft_model = peft.get_peft_model(CASE.build(), peft_config)
    with torch.no_grad():  # non-trivial weights, so a key lost on the way changes the logits
        gen = torch.Generator().manual_seed(3)
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    peft_model.eval()
    expected = logits_of(peft_model, CASE)
    peft_model.save_pretrained(tmp_path)
    assert "tuner" not in json.loads((tmp_path / CONFIG_NAME).read_text())

    loaded = Swift.from_pretrained(CASE.build(), tmp_path)
    assert loaded.tuners["default"].name == "peft"
    torch.testing.assert_close(logits_of(loaded, CASE), expected, atol=ATOL, rtol=0)
    with loaded.disable_adapters():
        torch.testing.assert_close(logits_of(loaded, CASE), logits_of(CASE.build(), CASE), atol=0, rtol=0)


# -- the Python API --------------------------------------------------------------------------------------------
def test_config_forms_agree():
    nested = PeftBridgeConfig(peft_config=METHODS["ia3"])
    flat = Swift.prepare(CASE.build(), {"tuner": "peft", **METHODS["ia3"]}).configs["default"]
    obj = Swift.prepare(CASE.build(), peft.IA3Config(**{k: v for k, v in METHODS["ia3"].items() if k != "peft_type"}))
    assert flat == nested == obj.configs["default"]
    assert nested.method == "IA3" and not nested.is_prompt_learning
    assert PeftBridgeConfig().method == "LORA"  # the default: PEFT's LoRA on all linear layers


@pytest.mark.parametrize(
    "config, message",
    [
        ({"peft_config": {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 4}}, "swiftune's 'prefix' tuner"),
        ({"peft_config": {"peft_type": "NOPE"}}, "unknown peft_type 'NOPE'"),
        ({"peft_config": {"target_modules": ["q_proj"]}}, "needs 'peft_type'"),
        ({"peft_config": {"peft_type": "IA3", "r": 4}}, "IA3Config"),
        ({"peft_config": {"peft_type": "VERA", "target_modules": ["q_proj"]}}, "shared between layers"),
        ({"peft_type": "IA3", "peft_config": {}}, "not both"),
        ({"peft_config": {"peft_type": "IA3", "target_modules": ["nothing_here"]}}, "PEFT could not inject IA3"),
    ],
)
def test_config_errors_name_the_tuner(config, message):
    with pytest.raises(ConfigError, match="peft") as info:
        Swift.prepare(CASE.build(), {"tuner": "peft", **config})
    assert message in str(info.value)


def test_mixing_with_native_tuners_and_prompt_rules():
    """A bridge IA3 and a native LoRA coexist; P-Tuning counts as a prompt-learning adapter."""
    model = Swift.prepare(CASE.build(), {"ia3": {"tuner": "peft", **METHODS["ia3"]}, "lora": {"tuner": "lora"}})
    train_steps(model, CASE, 3, seed=0, lr=3e-2)
    both = logits_of(model, CASE)
    model.set_active_adapters(["ia3"])
    ia3 = logits_of(model, CASE)
    assert not torch.equal(ia3, both)
    model.add_adapter("pt", {"tuner": "peft", **METHODS["ptuning"]}, active=False)
    model.add_adapter("prompt", {"tuner": "prompt", "num_virtual_tokens": 2}, active=False)
    with pytest.raises(ConfigError, match="only one of them can be active"):
        model.set_active_adapters(["pt", "prompt"])
    model.set_active_adapters(["ia3", "lora"])
    torch.testing.assert_close(logits_of(model, CASE), both, atol=1e-6, rtol=0)
    with pytest.raises(NotMergeableError):
        model.set_active_adapters(["pt"])
        model.merge_and_unload()


# -- the CLI ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sft_cli_with_peft_bridge(tmp_path_factory, tmp_path):
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    model, data = ensure_model(root), ensure_data(root)
    out = tmp_path / "run"
    peft_config = json.dumps({"peft_type": "LOHA", "target_modules": ["q_proj", "v_proj"], "r": 4})
    proc = run_cli("sft", "--model", str(model), "--dataset", str(data), "--output-dir", str(out), "--tuner", "peft",
                   "--peft-config", peft_config, "--max-steps", "2", "--save-steps", "2", "--val-ratio", "0",
                   *TRAIN_FLAGS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    final: Path = out / "final"
    assert json.loads((final / CONFIG_NAME).read_text())["peft_type"] == "LOHA"
    base = transformers.AutoModelForCausalLM.from_pretrained(model)
    peft_model = peft.PeftModel.from_pretrained(base, final)
    assert any("hada_w1_a" in n for n, _ in peft_model.named_parameters())
