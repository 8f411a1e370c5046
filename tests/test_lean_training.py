"""The paths on which sft does less work for the same loss, each checked against the plain path:
padding-free rows (``FlatCollator``), logits only at labelled positions (``answer_logits``), the LM
head fused into the loss (``head_loss``), and frozen Linear weights stored in the autocast dtype
(``cast_frozen_linears``)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file

import swiftune
from swiftune import Swift, cast_frozen_linears
from swiftune.data import DataCollator, FlatCollator
from swiftune.data.errors import DataError
from swiftune.errors import ConfigError
from swiftune.recipes.answer_logits import keep_answer_positions, supports_answer_logits
from swiftune.recipes.arguments import SftArguments
from swiftune.recipes.head_loss import attach_head_loss
from swiftune.recipes.padding_free import honours_restarts
from swiftune.recipes.lean import lean_training

from cli_fixtures import ensure_data, ensure_model, read_jsonl
from tiny_lms import TINY, bert, gpt2, llama, qwen2

@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """The tiny chat model and data the CLI tests share."""
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    return ensure_model(root), ensure_data(root)


#: (length, answer tokens) of three chat-like examples: the loss covers only the answers.
SHAPES = [(9, 4), (5, 2), (12, 7)]


def rows() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n, answer in SHAPES:
        ids = torch.randint(1, 64, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "attention_mask": [1] * n, "labels": [-100] * (n - answer) + ids[n - answer :]})
    return out


def with_lora(model: torch.nn.Module) -> torch.nn.Module:
    """LoRA on every linear layer with non-zero B, so that the adapter shapes the loss."""
    swift = Swift.prepare(model, {"tuner": "lora", "r": 4, "target_modules": "all-linear"})
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in swift.named_parameters():
            if ".lora_B." in name:
                p.normal_(std=0.1)
    return swift.train()


def loss_and_grads(model: torch.nn.Module, batch: dict, dtype: torch.dtype | None = None, head_loss=None):
    """The loss and gradients of one batch, from the model's own loss or from ``head_loss``."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = model(**batch).loss if head_loss is None else head_loss.loss(model, batch)[0]
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(got, expected, rel: float = 1e-5) -> None:
    (loss, grads), (loss_ref, grads_ref) = got, expected
    assert loss == pytest.approx(loss_ref, rel=rel)
    assert grads.keys() == grads_ref.keys() and len(grads) > 4
    scale = max(g.abs().max().item() for g in grads_ref.values())
    assert max((grads[k] - grads_ref[k]).abs().max().item() for k in grads) <= rel * scale * 10


# -- padding-free rows ------------------------------------------------------------------------------
def test_flat_collator_puts_examples_in_one_row_and_restarts_positions() -> None:
    batch = FlatCollator()(rows())
    total = sum(n for n, _ in SHAPES)
    assert set(batch) == {"input_ids", "position_ids", "labels"}  # no attention_mask: the masks come from positions
    assert batch["input_ids"].shape == batch["labels"].shape == (1, total)
    assert batch["position_ids"][0].tolist() == [*range(9), *range(5), *range(12)]
    expected = []
    for row in rows():
        expected += [-100, *row["labels"][1:]]  # an example's first token is never predicted
    assert batch["labels"][0].tolist() == expected
    assert batch["input_ids"][0].tolist() == sum((r["input_ids"] for r in rows()), [])


def test_flat_collator_refuses_padded_rows_and_class_labels() -> None:
    with pytest.raises(DataError, match="attention_mask"):
        FlatCollator()([{"input_ids": [1, 2, 0], "attention_mask": [1, 1, 0], "labels": [1, 2, -100]}])
    with pytest.raises(DataError, match="token labels"):
        FlatCollator()([{"input_ids": [1, 2], "labels": 1}])


@pytest.mark.parametrize("build", [llama, qwen2], ids=["llama", "qwen2"])
def test_padding_free_row_gives_the_padded_batch_loss_and_grads(build) -> None:
    model = with_lora(build())
    padded = DataCollator(pad_token_id=0)(rows())
    flat = {**FlatCollator()(rows()), "use_cache": False}
    assert_same(loss_and_grads(model, flat), loss_and_grads(model, padded))
    # The check sft runs before choosing padding-free batches agrees.
    assert honours_restarts(model) and model.training  # the check leaves the training mode alone


def test_a_row_without_restarts_would_mix_examples() -> None:
    """The check is not vacuous: with one running position range the flat row's loss differs."""
    model = with_lora(llama())
    padded = DataCollator(pad_token_id=0)(rows())
    flat = FlatCollator()(rows())
    mixed = {"input_ids": flat["input_ids"], "labels": flat["labels"], "use_cache": False}
    assert abs(loss_and_grads(model, mixed)[0] - loss_and_grads(model, padded)[0]) > 1e-4


def test_models_that_cannot_take_flat_rows_fail_the_check() -> None:
    assert not honours_restarts(bert())  # a sequence classifier: no per-position logits
    prompt = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 2})
    assert not honours_restarts(prompt)  # virtual tokens are added once per row, not per example


# -- logits at labelled positions only --------------------------------------------------------------
@pytest.mark.parametrize("build", [llama, qwen2, gpt2], ids=["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("items", [None, 11], ids=["mean", "num_items_in_batch"])
def test_logits_at_labelled_positions_give_the_same_loss_and_grads(build, items) -> None:
    model = with_lora(build()).eval()  # eval: no dropout (GPT-2 has some); gradients still flow
    assert supports_answer_logits(model)
    padded = DataCollator(pad_token_id=0)(rows())
    if items is not None:
        padded["num_items_in_batch"] = torch.tensor(items)
    lean = keep_answer_positions(padded)
    kept = lean["logits_to_keep"]
    assert 0 < kept.numel() < padded["input_ids"].shape[1]
    assert_same(loss_and_grads(model, lean), loss_and_grads(model, padded))
    with torch.no_grad():
        assert model(**lean).logits.shape[1] == kept.numel()


def test_flat_row_and_labelled_positions_together() -> None:
    model = with_lora(llama())
    padded = DataCollator(pad_token_id=0)(rows())
    flat = keep_answer_positions({**FlatCollator()(rows()), "use_cache": False})
    answers = sum(a for _, a in SHAPES)
    assert flat["logits_to_keep"].numel() == answers  # one row: exactly the positions that predict an answer
    assert_same(loss_and_grads(model, flat), loss_and_grads(model, padded))


def test_fully_labelled_or_unsupported_inputs_are_left_alone() -> None:
    ids = torch.randint(1, 64, (2, 6))
    inputs = {"input_ids": ids, "labels": ids}
    assert keep_answer_positions(inputs) is inputs
    assert not supports_answer_logits(bert())


# -- the LM head fused into the loss ----------------------------------------------------------------
@pytest.mark.parametrize("build", [llama, qwen2, gpt2], ids=["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_fused_head_loss_gives_the_model_loss_and_grads(build, dtype) -> None:
    model = with_lora(build()).eval()  # eval: no dropout (GPT-2 has some); gradients still flow
    head_loss = attach_head_loss(model)
    assert head_loss is not None
    padded = DataCollator(pad_token_id=0)(rows())
    for batch in (padded, keep_answer_positions({**padded, "num_items_in_batch": torch.tensor(11)})):
        expected = loss_and_grads(model, batch, dtype)
        assert_same(loss_and_grads(model, batch, dtype, head_loss), expected, rel=1e-5 if dtype is None else 1e-3)
    # Outside HeadLoss.loss the hook does nothing: the model computes its logits as before.
    with torch.no_grad():
        assert model(**padded).logits.shape == (*padded["input_ids"].shape, 64)


def test_fused_head_loss_on_a_flat_row_with_bf16_frozen_weights() -> None:
    model = with_lora(llama(tie=True))
    head_loss = attach_head_loss(model)  # probes in fp32, before the cast
    padded = DataCollator(pad_token_id=0)(rows())
    expected = loss_and_grads(model, padded, torch.bfloat16)
    cast_frozen_linears(model, torch.bfloat16)  # the tied head stays fp32: HeadLoss keeps a bf16 copy
    flat = keep_answer_positions({**FlatCollator()(rows()), "use_cache": False})
    assert_same(loss_and_grads(model, flat, torch.bfloat16, head_loss), expected, rel=1e-2)
    copy_before = head_loss.weight_in(torch.bfloat16)
    assert head_loss.weight_in(torch.bfloat16) is copy_before  # cast once, not per step
    with torch.no_grad():
        model.get_base_model().lm_head.weight.mul_(2)  # a changed weight (a resumed run) is re-cast
    assert not torch.equal(head_loss.weight_in(torch.bfloat16), copy_before)


#: Causal LMs of the model zoo and whether their head fuses (Gemma 2 soft-caps its logits).
ZOO_HEADS = {"llama": True, "qwen2": True, "qwen3": True, "mistral": True, "gemma": True, "gemma2": False,
             "phi3": True, "gpt2": True, "bloom": True}


@pytest.mark.parametrize("model_type", list(ZOO_HEADS))
def test_the_probe_decides_right_on_every_zoo_family(model_type) -> None:
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(model_type, **TINY[model_type])
    model = with_lora(transformers.AutoModelForCausalLM.from_config(config)).eval()
    head_loss = attach_head_loss(model)
    assert (head_loss is not None) == ZOO_HEADS[model_type]
    if head_loss is not None:
        batch = DataCollator(pad_token_id=0)(rows())
        assert_same(loss_and_grads(model, batch, None, head_loss), loss_and_grads(model, batch), rel=1e-5)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_full_fine_tuning_trains_the_fused_head_like_the_model_loss(dtype) -> None:
    """A trained head (tied to the embedding here) gets its gradient from the fused loss too."""
    model = Swift.prepare(llama(tie=True), {"tuner": "full"}).train()
    head_loss = attach_head_loss(model)
    assert head_loss is not None and model.get_base_model().lm_head.weight.requires_grad
    batch = keep_answer_positions(DataCollator(pad_token_id=0)(rows()))
    got, expected = loss_and_grads(model, batch, dtype, head_loss), loss_and_grads(model, batch, dtype)
    assert any("embed_tokens" in name for name in got[1])  # the tied head's gradient is there
    assert_same(got, expected, rel=1e-5 if dtype is None else 2e-3)


def test_heads_that_are_not_a_plain_projection_keep_the_model_loss() -> None:
    lora_head = Swift.prepare(llama(), {"tuner": "lora", "r": 2, "target_modules": ["q_proj", "lm_head"]})
    config = transformers.Gemma2Config(**TINY["gemma2"], final_logit_softcapping=0.5)
    softcapped = Swift.prepare(transformers.Gemma2ForCausalLM(config), {"tuner": "lora", "r": 2})
    for model in (lora_head, softcapped):
        assert attach_head_loss(model) is None
    # The probe, not only the config, decides: logits scaled after the head are caught, and the
    # refused model is left without the hook.
    scaled = with_lora(llama())
    head = scaled.get_base_model().lm_head
    head.register_forward_hook(lambda module, args, out: out * 1.5)
    assert attach_head_loss(scaled) is None and not head._forward_pre_hooks


# -- frozen Linear weights in the autocast dtype ----------------------------------------------------
def test_frozen_linears_in_bf16_give_the_autocast_results_exactly() -> None:
    model = with_lora(llama())
    batch = DataCollator(pad_token_id=0)(rows())
    lean = copy.deepcopy(model)
    names = cast_frozen_linears(lean, torch.bfloat16)
    # q k v o gate up down of both layers, and the untied, untargeted lm_head (its output is bf16 anyway)
    assert sorted(names) == sorted([n for n, m in lean.named_modules() if n.endswith("base_layer")] + ["model.lm_head"])
    assert len(names) == 2 * 7 + 1
    for name, p in lean.named_parameters():
        assert p.dtype == (torch.bfloat16 if name.rsplit(".", 1)[0] in names else torch.float32), name
    got, expected = loss_and_grads(lean, batch, torch.bfloat16), loss_and_grads(model, batch, torch.bfloat16)
    assert got[0] == expected[0]
    assert all(torch.equal(got[1][k], expected[1][k]) for k in expected[1])


def test_tied_and_trainable_linears_keep_their_dtype() -> None:
    model = Swift.prepare(llama(layers=1, tie=True), {"tuner": "lora", "r": 2, "target_modules": ["q_proj"]})
    names = cast_frozen_linears(model, torch.bfloat16)
    base = model.get_base_model()
    assert base.lm_head.weight.dtype == base.model.embed_tokens.weight.dtype == torch.float32  # tied: stays
    assert base.model.layers[0].self_attn.v_proj.weight.dtype == torch.bfloat16  # frozen, untargeted: cast
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert "model.lm_head" not in names and cast_frozen_linears(model, torch.bfloat16) == []  # idempotent


# -- what sft chooses --------------------------------------------------------------------------------
def test_sft_turns_everything_on_for_lora_under_bf16() -> None:
    lean = lean_training(SftArguments(), with_lora(llama()), "bf16")
    assert (lean.padding_free, lean.answer_logits_only, lean.cast_linears) == (True, True, 15)
    assert lean.head_loss is not None
    assert "padding-free" in lean.describe() and "LM head fused into the loss" in lean.describe()
    off = lean_training(SftArguments(padding_free=False, answer_logits_only=False, cast_frozen_weights=False,
                                     fused_head_loss=False), with_lora(llama()), "bf16")
    assert (off.padding_free, off.answer_logits_only, off.cast_linears, off.head_loss) == (False, False, 0, None)
    assert lean_training(SftArguments(), with_lora(llama()), "fp32").cast_linears == 0  # no autocast: nothing to save


def test_sft_keeps_prompt_tuning_and_weight_readers_on_the_plain_path() -> None:
    prompt = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 2})
    lean = lean_training(SftArguments(), prompt, "bf16")
    assert (lean.padding_free, lean.answer_logits_only, lean.head_loss) == (False, False, None)
    with pytest.raises(ConfigError, match="padding_free"):
        lean_training(SftArguments(padding_free=True), prompt, "bf16")
    bitfit = Swift.prepare(llama(), {"tuner": "bitfit"})  # trains deltas added to base tensors
    assert lean_training(SftArguments(), bitfit, "bf16").cast_linears == 0
    # full fine-tuning saves its frozen tensors too: they must keep their precision
    full = Swift.prepare(llama(), {"tuner": "full", "freeze_parameters": r"model\.layers\.0\..*"})
    assert lean_training(SftArguments(), full, "bf16").cast_linears == 0
    assert all(p.dtype == torch.float32 for p in full.parameters())


def short_sft(assets, out, **overrides) -> list[dict]:
    """Three optimizer steps of sft on the tiny chat model (fp32, every step logged): the log records."""
    model, data = assets
    args = dict(model=str(model), dataset=[str(data)], output_dir=str(out), max_steps=3, val_ratio=0.0,
                per_device_train_batch_size=4, gradient_accumulation_steps=1, precision="fp32",
                learning_rate=1e-2, logging_steps=1, save_steps=100, seed=0)
    swiftune.sft(**{**args, **overrides})
    return read_jsonl(out / "logging.jsonl")


# -- --compile: regional compilation ---------------------------------------------------------------
@pytest.mark.slow  # compiles one block (~20-40 s of CPU)
def test_compiled_blocks_train_like_eager_and_keep_their_names(assets, tmp_path, capsys) -> None:
    losses = {}
    for compiled in (False, True):
        out = tmp_path / f"run-{compiled}"
        losses[compiled] = [r["loss"] for r in short_sft(assets, out, compile=compiled) if "loss" in r]
        # Compiled in place: the saved adapter has the same tensor names.
        assert json.loads((out / "final" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert "2 blocks compiled" in capsys.readouterr().out
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    names = [set(load_file(tmp_path / f"run-{c}" / "final" / "adapter_model.safetensors")) for c in (False, True)]
    assert names[0] == names[1] and names[0]


def test_compile_is_refused_where_it_cannot_help() -> None:
    prompt = Swift.prepare(llama(), {"tuner": "prompt", "num_virtual_tokens": 2})
    with pytest.raises(ConfigError, match="compile"):
        lean_training(SftArguments(compile=True), prompt, "fp32")


@pytest.mark.slow  # two short sft runs on the tiny chat model
def test_sft_train_and_eval_losses_match_the_plain_path(assets, tmp_path, capsys) -> None:
    """End to end: the default lean paths (padding-free rows, logits at labelled positions, the fused
    head loss) log the plain path's train and eval losses (fp32)."""
    logs = {}
    for lean in (True, False):
        # Two micro-batches per step: the Trainer's num_items_in_batch reaches both losses.
        logs[lean] = short_sft(assets, tmp_path / f"run-{lean}", val_ratio=0.25, per_device_train_batch_size=2,
                               gradient_accumulation_steps=2, padding_free=lean, answer_logits_only=lean,
                               fused_head_loss=lean)
        said = capsys.readouterr().out
        assert ("padding-free batches, logits at labelled positions only, LM head fused into the loss" in said) == lean
    for key in ("loss", "eval_loss"):
        got, expected = ([r[key] for r in logs[lean] if key in r] for lean in (True, False))
        assert got and got == pytest.approx(expected, rel=1e-4), key
