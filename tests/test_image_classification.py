"""``swiftune sft --task image-classification`` on tiny ViT and Swin classifiers built from configs, with
generated images: an image folder (class subfolders) or (image, label) rows. The loss falls,
``eval_accuracy`` is in the run log, and the saved adapter (with its new head) reloads with equal logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from swiftune import Swift, cli
from swiftune.data.errors import DataError
from swiftune.loading import load_model
from swiftune.recipes.image_classification import LabelledImages
from swiftune.testing.diffusion import write_class_images


def vit() -> transformers.PreTrainedModel:
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        num_labels=2, initializer_range=0.2))


def swin() -> transformers.PreTrainedModel:
    return transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=16, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, num_labels=2))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_class_images(tmp_path_factory.mktemp("classes") / "shapes", per_class=8)


def save_base(build, folder: Path) -> Path:
    torch.manual_seed(0)
    build().save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]


def train_lora(base: Path, dataset: Path, run: Path, *, max_steps: int, logging_steps: int, save_steps: int) -> list[dict]:
    """``swiftune sft --task image-classification`` with LoRA (lr 1e-2, batch 8, a quarter held out); the run log."""
    assert cli.main(["sft", "--task", "image-classification", "--model", str(base), "--dataset", str(dataset),
                     "--tuner", "lora", "--output-dir", str(run), "--max-steps", str(max_steps), "--learning-rate",
                     "1e-2", "--per-device-train-batch-size", "8", "--gradient-accumulation-steps", "1",
                     "--logging-steps", str(logging_steps), "--save-steps", str(save_steps), "--val-ratio", "0.25"]) == 0
    return log_of(run)


def test_vit_on_an_image_folder(images, tmp_path):
    base = save_base(vit, tmp_path / "vit")
    run = tmp_path / "run"
    log = train_lora(base, images, run, max_steps=20, logging_steps=5, save_steps=10)
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    accuracy = [r["eval_accuracy"] for r in log if "eval_accuracy" in r]
    assert accuracy and accuracy[-1] >= 0.8, accuracy
    args = json.loads((run / "args.json").read_text())
    assert args["id2label"] == {"0": "bottom", "1": "middle", "2": "top"}

    # The adapter (LoRA plus the new 3-class head) reloads onto a fresh base with equal logits.
    head = {"num_labels": 3, "id2label": {0: "bottom", 1: "middle", 2: "top"}, "ignore_mismatched_sizes": True}
    fresh, processor = load_model(base, task="image-classification", **head)
    examples = [{"image": str(p), "label": p.parent.name} for p in sorted(images.rglob("*.png"))]
    batch = torch.stack([LabelledImages(examples, processor, {"bottom": 0, "middle": 1, "top": 2})[i]["pixel_values"]
                         for i in range(len(examples))])
    with torch.no_grad():
        plain = fresh.eval()(pixel_values=batch).logits
        tuned = Swift.from_pretrained(fresh, run / "final").eval()
        logits = tuned(pixel_values=batch).logits
        again = Swift.from_pretrained(load_model(base, task="image-classification", **head)[0], run / "final").eval()
        torch.testing.assert_close(again(pixel_values=batch).logits, logits)
    labels = torch.tensor([{"bottom": 0, "middle": 1, "top": 2}[e["label"]] for e in examples])
    assert (logits.argmax(-1) == labels).float().mean() >= 0.8
    assert not torch.allclose(plain, logits)


def test_swin_on_image_label_rows(images, tmp_path):
    base = save_base(swin, tmp_path / "swin")
    rows = [{"image": str(p.relative_to(images)), "label": p.parent.name} for p in sorted(images.rglob("*.png"))]
    data = images / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    log = train_lora(base, data, tmp_path / "run", max_steps=12, logging_steps=4, save_steps=12)
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0], losses
    assert any("eval_accuracy" in r for r in log)


def test_a_bad_image_row_names_the_file_line_and_path(images, tmp_path):
    from swiftune.data.images import load_image_datasets

    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"image": str(next(images.rglob("*.png"))), "label": "a"}) + "\n"
                    + json.dumps({"image": "bad.jpg", "label": "b"}) + "\n")
    with pytest.raises(DataError, match=r"rows.jsonl line 2: image 'bad.jpg' \(.*bad.jpg\): cannot decode it as an image"):
        load_image_datasets([str(data)], "image_classification")
