"""The 'prefix' tuner: PEFT as the oracle both ways (GQA and MHA llama, qwen2, gpt2), the KV cache
mechanics (prefix once, at prefill; masks and positions), the folded reparameterisation MLP, config
errors (learning itself: the conformance suite's memorise check) and ``swiftune sft --tuner prefix``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from swiftune import ConfigError, Swift, parse_config
from swiftune.serialization import read_adapter_config
from swiftune.testing import model_case
from swiftune.testing.conformance import train_steps
from swiftune.tuners.prefix import PrefixConfig

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from tiny_lms import gpt2, llama, max_diff, padded_pair, qwen2  # noqa: E402

ATOL = 1e-5
NUM = 5  # virtual tokens in these tests


# -- tiny models ------------------------------------------------------------------------------------
def llama_mha():
    return llama(layers=3, kv_heads=4)


MODELS = {"llama_gqa": llama, "llama_mha": llama_mha, "qwen2": qwen2, "gpt2": gpt2}


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits[:, -inputs["input_ids"].shape[1] :]


# -- PEFT, both ways ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(MODELS))
def test_swiftune_prefix_loads_in_peft_with_equal_logits(family, tmp_path):
    build, inputs = MODELS[family], padded_pair()
    torch.manual_seed(0)
    model = Swift.prepare(build(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    ours = logits(model, inputs)
    assert max_diff(ours, logits(build(), inputs)) > 1e-2  # the prefix changes the output
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "PREFIX_TUNING" and config["task_type"] == "CAUSAL_LM"
    assert set(load_file(tmp_path / "adapter_model.safetensors")) == {"prompt_embeddings"}
    theirs = peft.PeftModel.from_pretrained(build(), tmp_path)
    assert max_diff(logits(theirs, inputs), ours) < ATOL


@pytest.mark.parametrize("family", list(MODELS))
def test_peft_prefix_loads_in_swiftune_with_equal_logits(family, tmp_path):
    build, inputs = MODELS[family], padded_pair()
    torch.manual_seed(0)
    theirs = peft.get_peft_model(build(), peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=NUM))
    expected = logits(theirs, inputs)
    theirs.save_pretrained(tmp_path)
    ours = Swift.from_pretrained(build(), tmp_path)
    assert ours.tuners["default"].name == "prefix"
    assert max_diff(logits(ours, inputs), expected) < ATOL


def test_gqa_prefixes_have_key_value_head_width():
    """PEFT's convention: with GQA, num_attention_heads is the kv head count and token_dim their width."""
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    cfg = model.configs["default"]
    assert (cfg.num_attention_heads, cfg.token_dim, cfg.num_layers) == (2, 16, 2)  # 2 kv heads x head dim 8
    (rows,) = model.adapter_state_dict("default").values()
    assert rows.shape == (NUM, 2 * 2 * 16)
    assert model.trainable_summary().trainable == NUM * 2 * 2 * 16


# -- reparameterisation MLP, folded on save ------------------------------------------------------------
def test_prefix_projection_trains_the_mlp_and_saves_folded_prefixes(tmp_path):
    inputs = padded_pair()
    torch.manual_seed(0)
    cfg = {"tuner": "prefix", "num_virtual_tokens": NUM, "prefix_projection": True, "encoder_hidden_size": 12}
    model = Swift.prepare(llama(), cfg)
    names = {n.split("default.", 1)[1] for n, p in model.named_parameters() if p.requires_grad}
    assert names == {"embedding.weight", "transform.0.weight", "transform.0.bias", "transform.2.weight", "transform.2.bias"}
    assert model.trainable_summary().trainable == NUM * 16 + 16 * 12 + 12 + 12 * 64 + 64
    train_steps(model, model_case("llama"), 3, lr=0.05)  # the tiny llama case's batches fit this vocab
    ours = logits(model, inputs)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert set(saved) == {"prompt_embeddings"} and saved["prompt_embeddings"].shape == (NUM, 64)
    assert max_diff(logits(peft.PeftModel.from_pretrained(llama(), tmp_path), inputs), ours) < ATOL
    loaded = Swift.from_pretrained(llama(), tmp_path)
    assert max_diff(logits(loaded, inputs), ours) < ATOL
    assert loaded.trainable_summary().trainable == 0


def test_peft_prefix_projection_adapter_loads_in_swiftune(tmp_path):
    inputs = padded_pair()
    torch.manual_seed(0)
    peft_cfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=NUM, prefix_projection=True,
                                       encoder_hidden_size=12)  # fmt: skip
    theirs = peft.get_peft_model(llama(), peft_cfg)
    expected = logits(theirs, inputs)
    theirs.save_pretrained(tmp_path)
    assert max_diff(logits(Swift.from_pretrained(llama(), tmp_path), inputs), expected) < ATOL


def test_loading_into_a_training_projection_folds_it_with_a_warning():
    """What an sft resume does: the file's folded prefixes replace the MLP, outputs unchanged."""
    inputs = padded_pair()
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM, "prefix_projection": True})
    before, state = logits(model, inputs), model.adapter_state_dict("default")
    with pytest.warns(UserWarning, match="prefix: adapter 'default' trains through a reparameterising encoder"):
        model.tuners["default"].load_state_dict(model.model, state)
    assert max_diff(logits(model, inputs), before) < ATOL
    assert [p.shape for p in model.parameters() if p.requires_grad] == [(NUM, 64)]


# -- the KV cache: prefix once, at prefill; masks and positions ------------------------------------------
@pytest.mark.parametrize("cache_name", ["cache", "past_key_values"])
def test_incremental_decoding_puts_the_prefix_in_the_cache_once(cache_name):
    from transformers import DynamicCache

    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    ids = padded_pair(pad=0)["input_ids"]
    full = logits(model, {"input_ids": ids})
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        first = model(input_ids=ids[:, :5], attention_mask=torch.ones(2, 5, dtype=torch.long), use_cache=True,
                      **{cache_name: cache})  # fmt: skip
        assert cache.get_seq_length() == NUM + 5
        step = model(input_ids=ids[:, 5:6], attention_mask=torch.ones(2, 6, dtype=torch.long), use_cache=True,
                     **{cache_name: cache})  # fmt: skip
        assert cache.get_seq_length() == NUM + 6  # the prefix is not added again
    assert max_diff(first.logits, full[:, :5]) < ATOL
    assert max_diff(step.logits[:, -1], full[:, 5]) < ATOL


def test_attention_mask_may_already_count_the_prefix():
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    inputs = padded_pair()
    counted = {**inputs, "attention_mask": torch.cat([torch.ones(2, NUM, dtype=torch.long), inputs["attention_mask"]], 1)}
    assert max_diff(logits(model, counted), logits(model, inputs)) == 0.0
    with pytest.raises(ValueError, match="attention_mask has 3 positions"):
        model(input_ids=inputs["input_ids"], attention_mask=torch.ones(2, 3, dtype=torch.long))


def test_explicit_positions_continue_after_the_prefix():
    """gpt2 has absolute positions: caller positions 0.. are moved past the prefix, as PEFT does."""
    torch.manual_seed(0)
    model = Swift.prepare(gpt2(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    inputs = padded_pair(pad=0)
    positions = torch.arange(7).expand(2, -1)
    assert max_diff(logits(model, {**inputs, "position_ids": positions}), logits(model, inputs)) < ATOL
    assert max_diff(logits(model, {**inputs, "position_ids": positions + 1}), logits(model, inputs)) > 1e-3


def test_generate_with_left_padding_follows_the_forward():
    """Greedy tokens equal the argmax of a forward with generate's positions (cumsum of the mask)."""
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    inputs = padded_pair(pad=3)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=0)
        mask = torch.cat([inputs["attention_mask"], torch.ones(2, 2, dtype=torch.long)], 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        full = model(input_ids=out[:, :-1], attention_mask=mask, position_ids=positions).logits
    assert torch.equal(full[:, 6:].argmax(-1), out[:, 7:])


def test_gradient_checkpointing_is_refused_in_training():
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM})
    model.model.gradient_checkpointing_enable()
    model.train()
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        model(**padded_pair())


# -- config errors -------------------------------------------------------------------------------------------
def test_config_errors_name_the_tuner_and_field():
    with pytest.raises(ConfigError, match="prefix: num_virtual_tokens"):
        Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": 0})
    with pytest.raises(ConfigError, match="token_dim=24 does not fit the model"):
        Swift.prepare(llama(), {"tuner": "prefix", "token_dim": 24})
    with pytest.raises(ConfigError, match="prefix: encoder_hidden_size"):
        parse_config({"tuner": "prefix", "encoder_hidden_size": 0})
    assert PrefixConfig().num_virtual_tokens == 20 and not PrefixConfig().prefix_projection


def test_zero_prefixes_still_take_attention_weight():
    inputs = padded_pair()
    model = Swift.prepare(llama(), {"tuner": "prefix", "num_virtual_tokens": NUM, "init_weights": "zero"})
    base = llama()
    # Zero keys and values: the prefix takes attention weight but adds nothing, so outputs move.
    assert max_diff(logits(model, inputs), logits(base, inputs)) > 1e-4
    with model.disable_adapters():
        assert max_diff(logits(model, inputs), logits(base, inputs)) == 0.0


# -- training ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sft_cli_with_prefix(tmp_path):
    from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, run_cli

    model, data = ensure_model(tmp_path / "assets"), ensure_data(tmp_path / "assets")
    out = tmp_path / "run"
    proc = run_cli("sft", "--tuner", "prefix", "--num-virtual-tokens", "4", "--model", str(model), "--dataset",
                   str(data), "--output-dir", str(out), "--max-steps", "2", "--save-steps", "2", "--val-ratio", "0",
                   *TRAIN_FLAGS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = read_adapter_config(out / "final")  # the tuner: written, or implied by peft_type
    assert config["tuner"] == "prefix" and config["num_virtual_tokens"] == 4
    (rows,) = load_file(out / "final" / "adapter_model.safetensors").values()
    assert rows.shape == (4, 2 * 2 * 16) and torch.isfinite(rows).all()
    loaded = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(model), out / "final")
    assert torch.equal(loaded.prompt_encoder["default"].embedding.weight, rows)
