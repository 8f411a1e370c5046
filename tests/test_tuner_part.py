"""``part`` and ``bitfit``: selection, deltas that leave the base untouched, what is saved and how it
loads, tied weights, adapters adding up, stacking with LoRA, and the errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from swiftune import Swift
from swiftune.errors import ConfigError
from swiftune.testing import conformance_tests, model_case
from swiftune.testing.conformance import logits_of, train_steps

from tiny_lms import llama

# The default (the last block) needs a block list: plain modules run the suite with explicit targets.
test_part_plain_modules = conformance_tests("part", models=["mlp", "conv"], config={"target_parameters": r".*\.weight"})
test_part_bias_regex = conformance_tests("part", models=["llama"], checks=["save_load", "merge"],
                                         config={"target_parameters": ["o_proj.weight", "norm.weight"]})


def test_bitfit_selects_exactly_the_biases():
    case = model_case("gpt2")
    model = Swift.prepare(case.build(), {"tuner": "bitfit"})
    keys = set(model.adapter_state_dict("default"))
    biases = {n for n, _ in case.build().named_parameters() if n.endswith(".bias")}
    assert keys == biases and len(keys) == 13  # 6 per block + ln_f


def test_bitfit_norms_auto_on_bias_free_models():
    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "bitfit"})
    norms = {n for n, _ in case.build().named_parameters() if "norm" in n}
    assert set(model.adapter_state_dict("default")) == norms and len(norms) == 5  # 2 per block + final
    with pytest.raises(ConfigError, match=r"bitfit \(adapter 'default'\).*selected no"):
        Swift.prepare(case.build(), {"tuner": "bitfit", "norms": False})
    gpt2 = model_case("gpt2").build()
    with_norms = Swift.prepare(gpt2, {"tuner": "bitfit", "norms": True})
    assert "transformer.ln_f.weight" in with_norms.adapter_state_dict("default")


@pytest.mark.parametrize("name", ["gpt2", "llama", "mlp"])
def test_bitfit_learns(name):
    """BitFit skips the suite's memorise check (memorises = False); it must still clearly learn."""
    case = model_case(name)
    model = Swift.prepare(case.build(), {"tuner": "bitfit"})
    losses = train_steps(model, case, 30, seed=0)
    assert losses[-1] < 0.85 * losses[0], f"bitfit on {name}: loss {losses[0]:.4f} -> {losses[-1]:.4f}"


def test_part_default_is_the_last_block_and_base_stays_frozen():
    case = model_case("llama")
    base = case.build()
    original = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = Swift.prepare(base, {"tuner": "part"})
    selected = set(model.adapter_state_dict("default"))
    assert selected == {n for n in original if n.startswith("model.layers.1.")}
    train_steps(model, case, 5)
    assert all(torch.equal(p, original[n]) for n, p in base.named_parameters() if n in original), "base moved"
    with model.disable_adapters():
        assert torch.equal(logits_of(model, case), logits_of(case.build(), case))


def test_saves_only_selected_deltas_and_loading_applies_them(tmp_path):
    case = model_case("qwen2")
    model = Swift.prepare(case.build(), {"tuner": "part", "target_parameters": r".*\.(q_proj|v_proj)\.bias"})
    train_steps(model, case, 5)
    adapted = logits_of(model, case)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert set(saved) == {f"model.layers.{i}.self_attn.{m}.bias" for i in range(2) for m in ("q_proj", "v_proj")}
    assert all(t.abs().max() > 0 for t in saved.values()), "the deltas were not trained"
    # Loading adds the deltas onto the base: merged values are base + delta, all else untouched.
    plain = Swift.from_pretrained(case.build(), tmp_path).merge_and_unload()
    base = dict(case.build().named_parameters())
    for name, p in plain.named_parameters():
        expected = base[name] + saved[name] if name in saved else base[name]
        assert torch.allclose(p, expected, atol=1e-6), name
    torch.testing.assert_close(logits_of(plain, case), adapted, atol=1e-5, rtol=1e-5)


def test_tied_weights_share_one_delta(tmp_path):
    def build():
        return llama(layers=1, tie=True)

    model = Swift.prepare(build(), {"tuner": "part", "target_parameters": ["lm_head.weight"]})
    (name,) = model.adapter_state_dict("default")
    assert name == "model.embed_tokens.weight"  # the first name of the tied pair, as transformers saves it
    (delta,) = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        delta.fill_(0.01)
    ids = torch.tensor([[1, 2, 3]])
    expected = build()
    with torch.no_grad():
        expected.model.embed_tokens.weight.add_(0.01)  # moves the head too: they are one tensor
        torch.testing.assert_close(model(input_ids=ids).logits, expected(input_ids=ids).logits)
    model.save_pretrained(tmp_path)
    loaded = Swift.from_pretrained(build(), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected(input_ids=ids).logits)


def test_two_active_adapters_add_their_deltas():
    case = model_case("gpt2")
    cfg = {"tuner": "part", "target_parameters": r".*\.c_proj\.(weight|bias)"}
    model = Swift.prepare(case.build(), {"a": cfg, "b": {"tuner": "bitfit"}})
    model.set_active_adapters(["a"])
    train_steps(model, case, 5)
    model.set_active_adapters(["b"])
    train_steps(model, case, 5, seed=3)
    model.set_active_adapters(["a", "b"])
    both = logits_of(model, case)
    expected = case.build()
    with torch.no_grad():
        params = dict(expected.named_parameters())
        for adapter in ("a", "b"):
            for key, delta in model.adapter_state_dict(adapter).items():
                params[key].add_(delta)
    torch.testing.assert_close(both, logits_of(expected, case), atol=1e-5, rtol=1e-5)
    with model.disable_adapters():
        assert torch.equal(logits_of(model, case), logits_of(case.build(), case))


@pytest.mark.parametrize("order", [("lora", "part"), ("part", "lora")])
def test_stacks_with_lora_on_the_same_layer(order, tmp_path):
    case = model_case("qwen2")
    configs = {"lora": {"tuner": "lora", "target_modules": ["q_proj"]},
               "part": {"tuner": "part", "target_parameters": r".*q_proj\.(weight|bias)"}}
    model = Swift.prepare(case.build(), {name: configs[name] for name in order})
    train_steps(model, case, 5)
    adapted = logits_of(model, case)
    assert set(model.adapter_state_dict("part")) == {f"model.layers.{i}.self_attn.q_proj.{k}" for i in range(2) for k in ("weight", "bias")}
    with model.disable_adapters():
        assert torch.equal(logits_of(model, case), logits_of(case.build(), case))
    model.save_pretrained(tmp_path)
    loaded = Swift.from_pretrained(case.build(), tmp_path, adapter_names=list(order))
    assert sorted(loaded.active_adapters) == ["lora", "part"]
    torch.testing.assert_close(logits_of(loaded, case), adapted, atol=1e-6, rtol=1e-6)
    plain = model.merge_and_unload()
    assert set(plain.state_dict()) == set(case.build().state_dict())
    torch.testing.assert_close(logits_of(plain, case), adapted, atol=1e-4, rtol=1e-4)


def test_config_errors_name_tuner_and_field():
    with pytest.raises(ConfigError, match=r"part \(adapter 'default'\): target_parameters='.\*nothing' selected no"):
        Swift.prepare(model_case("llama").build(), {"tuner": "part", "target_parameters": ".*nothing"})
    with pytest.raises(ConfigError, match="part: target_parameters"):
        Swift.prepare(model_case("llama").build(), {"tuner": "part", "target_parameters": 3})
    with pytest.raises(ConfigError, match="set target_parameters"):
        Swift.prepare(model_case("mlp").build(), {"tuner": "part"})
    with pytest.raises(ConfigError, match="bitfit: norms"):
        Swift.prepare(model_case("mlp").build(), {"tuner": "bitfit", "norms": "sometimes"})
