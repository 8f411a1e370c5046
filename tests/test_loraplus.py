"""LoRA+ (``lorap_lr_ratio``): the optimizer groups against PEFT's ``create_loraplus_optimizer``, the
Trainer's optimizer built from them, and nothing changed when the ratio is None."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from peft.optimizers import create_loraplus_optimizer  # noqa: E402

from swiftune import Swift, loraplus_param_groups  # noqa: E402
from swiftune.errors import ConfigError  # noqa: E402
from swiftune.loraplus import loraplus_optimizer  # noqa: E402
from swiftune.recipes.arguments import SftArguments  # noqa: E402
from swiftune.recipes.trainer import SwiftTrainer  # noqa: E402

from tiny_lms import qwen2  # noqa: E402

LR, RATIO = 1e-3, 16.0
# Embedding LoRA, trained biases and DoRA magnitudes: every special case of PEFT's grouping.
FIELDS = {"target_modules": ["embed_tokens", "q_proj", "down_proj"], "bias": "lora_only"}
DORA = {"target_modules": ["q_proj", "v_proj"], "use_dora": True, "bias": "all"}


def rate_by_name(named: dict[int, str], groups: list[dict]) -> dict[str, float]:
    return {named[id(p)]: g["lr"] for g in groups for p in g["params"]}


@pytest.mark.parametrize("fields", [FIELDS, DORA], ids=["embedding-bias", "dora"])
def test_groups_give_every_parameter_peft_s_learning_rate(fields: dict) -> None:
    ours = Swift.prepare(qwen2(), {"tuner": "lora", **fields})
    theirs = peft.get_peft_model(qwen2(), peft.LoraConfig(**fields))
    peft_opt = create_loraplus_optimizer(theirs, torch.optim.AdamW, lr=LR, loraplus_lr_ratio=RATIO)
    peft_names = {id(p): n.removeprefix("base_model.model.") for n, p in theirs.named_parameters()}
    our_names = {id(p): n.removeprefix("model.").replace("lora_magnitude_vector.default", "lora_magnitude_vector.default.weight")
                 for n, p in ours.named_parameters()}  # fmt: skip
    expected = rate_by_name(peft_names, peft_opt.param_groups)
    got = rate_by_name(our_names, loraplus_param_groups(ours, LR, RATIO))
    assert got == expected
    rates = set(got.values())
    assert rates == ({LR, LR * RATIO, 1e-6} if fields is FIELDS else {LR, LR * RATIO})  # A, B, embedding LoRA
    assert all(rate == LR * RATIO for n, rate in got.items() if ".lora_B." in n or "magnitude" in n or n.endswith("bias"))


def test_trainer_optimizer_uses_the_groups_and_weight_decay(tmp_path: Path) -> None:
    model = Swift.prepare(qwen2(), {"tuner": "lora", **FIELDS})
    args = transformers.TrainingArguments(output_dir=str(tmp_path), learning_rate=LR, weight_decay=0.1, report_to=[])
    trainer = SwiftTrainer(model=model, args=args, optimizer_cls_and_kwargs=loraplus_optimizer(args, RATIO, model))
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    by_group = {(g["loraplus_group"], g["weight_decay"]): g for g in optimizer.param_groups}
    assert {k: g["lr"] for k, g in by_group.items()} == {
        ("A", 0.1): LR, ("B", 0.1): LR * RATIO, ("B", 0.0): LR * RATIO, ("embedding", 0.1): 1e-6,
    }
    # Biases and DoRA's 1-D magnitudes decay as the Trainer decides: not at all for biases.
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith("bias") for p in by_group[("B", 0.0)]["params"])
    trained = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == trained
    # The scheduler scales each group from its own rate.
    trainer.create_scheduler(num_training_steps=10, optimizer=optimizer)
    optimizer.step()  # no gradients yet: changes nothing, keeps the scheduler order torch expects
    trainer.lr_scheduler.step()
    assert by_group[("B", 0.1)]["lr"] == pytest.approx(RATIO * by_group[("A", 0.1)]["lr"])


def test_no_ratio_is_the_trainer_s_own_optimizer(tmp_path: Path) -> None:
    assert SftArguments().lorap_lr_ratio is None
    args = transformers.TrainingArguments(output_dir=str(tmp_path), learning_rate=LR, report_to=[])
    assert loraplus_optimizer(args, None) is None
    model = Swift.prepare(qwen2(), {"tuner": "lora", **FIELDS})
    trainer = SwiftTrainer(model=model, args=args, optimizer_cls_and_kwargs=loraplus_optimizer(args, None, model))
    assert {g["lr"] for g in trainer.create_optimizer().param_groups} == {LR}


def test_ratio_field_and_errors(tmp_path: Path) -> None:
    assert SftArguments(lorap_lr_ratio=8).lorap_lr_ratio == 8.0
    with pytest.raises(ValueError, match="lorap_lr_ratio"):
        SftArguments(lorap_lr_ratio=0)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[])
    prompt = Swift.prepare(qwen2(), {"tuner": "prompt", "num_virtual_tokens": 2})
    with pytest.raises(ConfigError, match="no LoRA B matrix"):
        loraplus_optimizer(args, RATIO, prompt)


@pytest.mark.slow
def test_sft_cli_with_ms_swift_spelling_of_dora_and_loraplus(tmp_path_factory, tmp_path: Path) -> None:
    """``--use_dora true --lorap_lr_ratio 4`` (ms-swift's flags) train a DoRA adapter that PEFT loads."""
    import json

    from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, run_cli

    root = tmp_path_factory.getbasetemp() / "cli-assets"
    model, data = ensure_model(root), ensure_data(root)
    out = tmp_path / "run"
    proc = run_cli("sft", "--model", str(model), "--dataset", str(data), "--output_dir", str(out), "--use_dora", "true",
                   "--lorap_lr_ratio", "4", "--max-steps", "2", "--save-steps", "2", "--val-ratio", "0", *TRAIN_FLAGS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "args.json").read_text())["lorap_lr_ratio"] == 4
    config = json.loads((out / "final" / "adapter_config.json").read_text())
    assert config["use_dora"] is True
    base = transformers.AutoModelForCausalLM.from_pretrained(model)
    theirs = peft.PeftModel.from_pretrained(base, out / "final")
    ours = Swift.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(model), out / "final")
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids).logits, theirs(input_ids=ids).logits, atol=1e-5, rtol=0)
