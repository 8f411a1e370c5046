"""``swiftune sft --task image-classification``: a tuner on a ViT / Swin classifier, with accuracy in
the eval logs (``eval_accuracy`` in ``logging.jsonl``).

The data is a folder of class subfolders or rows of ``image`` (path) + ``label``. The classes are
the data's: a checkpoint whose labels already name them all keeps its head; otherwise the head is
new (``num_labels`` classes, sorted) and trained in full through the tuner's ``modules_to_save``.
``args.json`` records ``id2label``, so the classes travel with the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .arguments import SftArguments
from .task_run import TaskSetup, run_task


class LabelledImages(torch.utils.data.Dataset):
    """``image_classification`` examples -> the processor's ``pixel_values`` and the class index."""

    def __init__(self, examples: list[dict[str, Any]], processor: Any, label2id: dict[str, int]) -> None:
        self.examples, self.processor, self.label2id = examples, processor, label2id

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from ..data.images import open_image

        example = self.examples[index]
        pixels = self.processor(images=open_image(example["image"]), return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixels, "labels": torch.tensor(self.label2id[str(example["label"])])}


def class_names(labels: list[Any]) -> list[str]:
    """The classes of the data, in index order: integer labels in numeric order, names sorted."""
    found = set(labels)
    if all(isinstance(x, int) for x in found):  # 0..k-1 keep their indices; other integers in numeric order
        return [str(i) for i in sorted(found)]
    return sorted({str(x) for x in found})


def accuracy(eval_pred: Any) -> dict[str, float]:
    """``compute_metrics``: the share of examples whose top logit is the label."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    predicted = torch.as_tensor(logits).argmax(-1)
    return {"accuracy": float((predicted == torch.as_tensor(labels)).float().mean())}


def _kept_labels(model_name: str, names: list[str]) -> bool:
    """Whether a local checkpoint's own labels name every class of the data (its head then stays)."""
    from transformers import AutoConfig

    folder = Path(model_name).expanduser()
    if not (folder / "config.json").is_file():
        return False
    label2id = getattr(AutoConfig.from_pretrained(folder), "label2id", None) or {}
    return set(names) <= set(label2id) and len(label2id) == len(names)


def build_image_classification(args: SftArguments, precision: str) -> TaskSetup:
    from .. import registries
    from ..api import Swift
    from ..config import parse_config
    from ..data.images import load_image_datasets
    from ..loading import family_for, load_model

    rows = load_image_datasets(args.dataset, "image_classification", val_specs=args.val_dataset,
                               val_ratio=args.val_ratio, seed=args.seed, skip_bad_rows=args.skip_bad_rows)
    names = class_names([e["label"] for e in rows.train + rows.val])
    if len(names) < 2:
        raise ConfigError(f"--dataset: image classification needs two or more classes; the data has {names}")
    head: dict[str, Any] = {}
    if not _kept_labels(args.model, names):
        head = {"num_labels": len(names), "id2label": dict(enumerate(names)),
                "label2id": {n: i for i, n in enumerate(names)}, "ignore_mismatched_sizes": True}
    model, processor = load_model(args.model, task="image-classification", trust_remote_code=args.allows_remote_code(),
                                  **head)
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    family = family_for(model)
    fields = registries.tuners.get(args.tuner).config_class.model_fields
    tuner_args = dict(args.tuner_args)
    if "target_modules" in fields and "target_modules" not in tuner_args:
        tuner_args["target_modules"] = family.default_target_modules
    head_module = family.keys.lm_head or "classifier"
    if "modules_to_save" in fields and "modules_to_save" not in tuner_args:  # tuners that train the whole model have no such field
        tuner_args["modules_to_save"] = [head_module]
    tuner_config = parse_config({**tuner_args, "tuner": args.tuner})
    swift = Swift.prepare(model, tuner_config, adapter_dtype=args.adapter_dtype)
    train = LabelledImages(rows.train, processor, label2id)
    val = LabelledImages(rows.val, processor, label2id) if rows.val else None
    skipped = f", {len(rows.skipped)} bad row(s) skipped" if rows.skipped else ""
    return TaskSetup(
        swift=swift, tuner_config=tuner_config, train=train, val=val, processing_class=processor,
        compute_metrics=accuracy,
        banner=[f"data       {len(train):,} train / {len(val) if val else 0:,} eval images, {len(names)} classes "
                f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}){skipped}",
                f"head       {'kept (the checkpoint names these classes)' if not head else 'new'}: {head_module}"],
        resolved={"id2label": {str(i): n for n, i in label2id.items()}, "num_labels": len(label2id)},
    )


def run_image_classification(args: SftArguments) -> Any:
    """Train a tuner on an image classifier; returns an ``SftResult``."""
    return run_task(args, build_image_classification)
