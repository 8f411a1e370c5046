"""The 'prompt' tuner: PEFT as the oracle both ways (logits, loss with labels, TEXT init), P-Tuning's
prompt encoders folded on save, the KV cache (virtual tokens once, at prefill), config errors
(learning itself: the conformance suite's memorise check) and ``swiftune.sft(tuner="prompt")``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from swiftune import ConfigError, Swift, parse_config
from swiftune.testing import model_case
from swiftune.testing.conformance import train_steps
from swiftune.testing.tokenizers import tiny_tokenizer

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from tiny_lms import gpt2, llama, max_diff, padded_pair, qwen2  # noqa: E402

ATOL = 1e-5
NUM = 5  # virtual tokens in these tests
INIT_TEXT = "Hello how are you"


# -- tiny models ------------------------------------------------------------------------------------
MODELS = {"llama_gqa": llama, "qwen2": qwen2, "gpt2": gpt2}


def output(model, inputs):
    with torch.no_grad():
        return model(**inputs)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    tiny_tokenizer().save_pretrained(folder)
    return folder


# -- PEFT, both ways ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(MODELS))
def test_swiftune_prompt_loads_in_peft_with_equal_logits(family, tmp_path):
    build, inputs = MODELS[family], padded_pair()
    torch.manual_seed(0)
    model = Swift.prepare(build(), {"tuner": "prompt", "num_virtual_tokens": NUM})
    ours = output(model, inputs).logits
    assert ours.shape[1] == NUM + 7  # logits cover the virtual positions too, as PEFT's do
    assert max_diff(ours[:, NUM:], output(build(), inputs).logits) > 1e-2
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["task_type"] == "CAUSAL_LM"
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert set(saved) == {"prompt_embeddings"} and saved["prompt_embeddings"].shape == (NUM, 32)
    theirs = peft.PeftModel.from_pretrained(build(), tmp_path)
    assert max_diff(output(theirs, inputs).logits, ours) < ATOL


@pytest.mark.parametrize("family", list(MODELS))
def test_peft_prompt_loads_in_swiftune_with_equal_logits(family, tmp_path):
    build, inputs = MODELS[family], padded_pair()
    torch.manual_seed(0)
    theirs = peft.get_peft_model(build(), peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=NUM))
    expected = output(theirs, inputs).logits
    theirs.save_pretrained(tmp_path)
    ours = Swift.from_pretrained(build(), tmp_path)
    assert ours.tuners["default"].name == "prompt"
    assert max_diff(output(ours, inputs).logits, expected) < ATOL


def test_labels_are_extended_and_the_loss_equals_peft(tmp_path):
    inputs = padded_pair()
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": NUM})
    ours = output(model, {**inputs, "labels": labels})
    model.save_pretrained(tmp_path)
    theirs = output(peft.PeftModel.from_pretrained(llama(), tmp_path), {**inputs, "labels": labels})
    assert abs(ours.loss.item() - theirs.loss.item()) < ATOL
    # Virtual positions carry label -100: the loss scores the real tokens only (the first one
    # predicted from the last virtual token).
    manual = torch.nn.functional.cross_entropy(ours.logits[:, NUM - 1 : -1].reshape(-1, 64), labels.reshape(-1))
    assert abs(ours.loss.item() - manual.item()) < ATOL


def test_inputs_embeds_work_like_input_ids():
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": NUM})
    inputs = padded_pair()
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    by_embeds = output(model, {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]}).logits
    assert max_diff(by_embeds, output(model, inputs).logits) < ATOL


# -- initialisation -------------------------------------------------------------------------------------------
def test_text_init_uses_the_tokenizer_and_matches_peft(tokenizer_dir):
    tok = tiny_tokenizer()
    ids = tok(INIT_TEXT)["input_ids"]
    assert len(ids) == 4 and max(ids) < 64
    cfg = {"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": INIT_TEXT, "tokenizer_name_or_path": str(tokenizer_dir)}
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 6, **cfg})
    rows = model.adapter_state_dict("default")["prompt_embeddings"]
    expected = llama().get_input_embeddings().weight[torch.tensor(ids + ids[:2])]  # repeated, cut to 6
    assert torch.equal(rows, expected.detach())
    theirs = peft.get_peft_model(llama(), peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6, **cfg))
    assert torch.equal(theirs.prompt_encoder["default"].embedding.weight.detach(), rows)
    short = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 3, **cfg})
    assert torch.equal(short.adapter_state_dict("default")["prompt_embeddings"], expected[:3].detach())


def test_sample_vocab_init_takes_vocabulary_rows():
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": NUM, "prompt_tuning_init": "SAMPLE_VOCAB"})
    rows = model.adapter_state_dict("default")["prompt_embeddings"]
    vocab = model.get_input_embeddings().weight.detach()
    assert all(any(torch.equal(row, v) for v in vocab) for row in rows)


def test_random_init_is_standard_normal():
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 200})
    rows = model.adapter_state_dict("default")["prompt_embeddings"]
    assert abs(rows.mean().item()) < 0.05 and abs(rows.std().item() - 1.0) < 0.05


# -- P-Tuning: prompt encoders, folded on save -------------------------------------------------------------
@pytest.mark.parametrize("encoder", ["MLP", "LSTM"])
def test_p_tuning_encoder_trains_and_saves_prompt_tuning_format(encoder, tmp_path):
    inputs = padded_pair()
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": NUM, "encoder_type": encoder,
                                        "encoder_hidden_size": 8})  # fmt: skip
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(".embedding." in n for n in trainable) and any((".head." in n) for n in trainable), trainable
    before = model.adapter_state_dict("default")["prompt_embeddings"]
    train_steps(model, model_case("llama"), 3, lr=0.05)
    ours = output(model, inputs).logits
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert set(saved) == {"prompt_embeddings"} and saved["prompt_embeddings"].shape == (NUM, 32)
    assert max_diff(saved["prompt_embeddings"], before) > 1e-4  # training moved the encoder's output
    assert max_diff(output(peft.PeftModel.from_pretrained(llama(), tmp_path), inputs).logits, ours) < ATOL
    loaded = Swift.from_pretrained(llama(), tmp_path)
    assert max_diff(output(loaded, inputs).logits, ours) < ATOL
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in llama().parameters()) + NUM * 32


# -- the KV cache: virtual tokens once, at prefill --------------------------------------------------------------
def test_incremental_decoding_adds_the_virtual_tokens_once():
    from transformers import DynamicCache

    torch.manual_seed(0)
    model = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": NUM})
    ids = padded_pair(pad=0)["input_ids"]
    full = output(model, {"input_ids": ids}).logits[:, NUM:]
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        first = model(input_ids=ids[:, :5], attention_mask=torch.ones(2, 5, dtype=torch.long), cache=cache, use_cache=True)
        assert cache.get_seq_length() == NUM + 5
        step = model(input_ids=ids[:, 5:6], attention_mask=torch.ones(2, 6, dtype=torch.long), cache=cache, use_cache=True)
        assert cache.get_seq_length() == NUM + 6
    assert max_diff(first.logits[:, NUM:], full[:, :5]) < ATOL
    assert max_diff(step.logits[:, -1], full[:, 5]) < ATOL


def test_gradient_checkpointing_trains_the_virtual_tokens():
    case = model_case("llama")
    torch.manual_seed(0)
    plain = Swift.prepare(case.build(), {"tuner": "prompt", "num_virtual_tokens": NUM})
    torch.manual_seed(0)
    checkpointed = Swift.prepare(case.build(), {"tuner": "prompt", "num_virtual_tokens": NUM})
    checkpointed.model.gradient_checkpointing_enable()
    grads = []
    for model in (plain, checkpointed):
        model.train()
        case.loss(model, case.batch(0)).backward()
        (param,) = [p for p in model.parameters() if p.requires_grad]
        grads.append(param.grad)
    assert grads[0].abs().max() > 0 and max_diff(grads[0], grads[1]) < 1e-6


# -- config errors -------------------------------------------------------------------------------------------
def test_config_errors_name_the_tuner_and_field(tmp_path):
    with pytest.raises(ConfigError, match="prompt: num_virtual_tokens"):
        Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 0})
    with pytest.raises(ConfigError, match="prompt: .*prompt_tuning_init_text"):
        parse_config({"tuner": "prompt", "prompt_tuning_init": "TEXT"})
    with pytest.raises(ConfigError, match="prompt: encoder_type"):
        parse_config({"tuner": "prompt", "encoder_type": "GRU"})
    with pytest.raises(ConfigError, match="tokenizer_name_or_path=.*cannot load a tokenizer"):
        Swift.prepare(llama(), {"tuner": "prompt", "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "hi",
                                    "tokenizer_name_or_path": str(tmp_path / "missing")})  # fmt: skip
    with pytest.raises(ConfigError, match="token_dim=16 does not fit the model"):
        Swift.prepare(llama(), {"tuner": "prompt", "token_dim": 16})


# -- training ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sft_python_api_with_prompt(tmp_path):
    import swiftune
    from cli_fixtures import ensure_data, ensure_model, read_jsonl

    model, data = ensure_model(tmp_path / "assets"), ensure_data(tmp_path / "assets")
    out = tmp_path / "run"
    result = swiftune.sft(model=str(model), dataset=[f"{data}#16"], output_dir=str(out), max_steps=2, save_steps=2,
                          logging_steps=1, val_ratio=0, precision="fp32", per_device_train_batch_size=4,
                          gradient_accumulation_steps=1, learning_rate=0.1, tuner="prompt",
                          tuner_args={"num_virtual_tokens": 4})  # fmt: skip
    assert result.global_step == 2
    losses = [r["loss"] for r in read_jsonl(out / "logging.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert saved["prompt_embeddings"].shape == (4, 32)
    base = transformers.AutoModelForCausalLM.from_pretrained(model)
    assert Swift.from_pretrained(base, result.adapter_dir).tuners["default"].name == "prompt"
