"""SwiftModel trains under the transformers ``Trainer`` like any ``PreTrainedModel``."""

import pytest
import torch

from swiftune import Swift
from swiftune.testing import tiny_llama

transformers = pytest.importorskip("transformers")


def _dataset(case, n: int = 8) -> list[dict[str, torch.Tensor]]:
    """``n`` fixed random sequences, labels = input ids (the model shifts them)."""
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(1, case.vocab_size, (n, case.seq_len), generator=gen)
    return [{"input_ids": row, "attention_mask": torch.ones_like(row), "labels": row.clone()} for row in ids]


def _mean_loss(model, data) -> float:
    batch = {k: torch.stack([row[k] for row in data]) for k in data[0]}
    with torch.no_grad():
        return model(**batch).loss.item()


def test_trainer_trains_only_lora(tmp_path):
    case = tiny_llama()
    model = Swift.prepare(case.build(), {"tuner": "lora"})
    data = _dataset(case)
    lora = {n for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all(".lora_" in n for n in lora)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = _mean_loss(model.eval(), data)

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=20,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    result = trainer.train()

    assert result.global_step == 20
    logged = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 20
    end = _mean_loss(model.eval(), data)
    assert end < 0.5 * start, f"loss {start:.3f} -> {end:.3f}"
    assert sum(logged[-4:]) < 0.5 * sum(logged[:4]), logged

    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "Trainer changed no parameter"
    assert changed <= lora, f"non-LoRA parameters changed: {sorted(changed - lora)[:5]}"
    assert len(changed) == len(lora), f"LoRA parameters left untouched: {sorted(lora - changed)[:5]}"
