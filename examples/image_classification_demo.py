"""Image classification from the CLI on a tiny random ViT, on CPU in seconds.

Writes an image folder of three classes (``top``, ``middle``, ``bottom``: where a bright band lies)
and a tiny ``ViTForImageClassification`` with a ``ViTImageProcessor`` under ``--workdir``, then runs
``swiftune sft --task image-classification`` (LoRA plus a new 3-class head) and prints the eval
accuracy the run logged (``eval_accuracy`` in ``logging.jsonl``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import transformers

from swiftune import cli
from swiftune.recipes.runtime import quiet_libraries
from swiftune.testing.diffusion import write_class_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="output/image-classification-demo", help="where the model, data and run go")
    workdir = Path(parser.parse_args().workdir)
    quiet_libraries()
    images, base, run = workdir / "bands", workdir / "tiny-vit", workdir / "run"
    write_class_images(images, per_class=8)
    torch.manual_seed(0)
    transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        initializer_range=0.2)).save_pretrained(base)
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(base)
    assert cli.main(["sft", "--task", "image-classification", "--model", str(base), "--dataset", str(images),
                     "--output-dir", str(run), "--overwrite-output-dir", "--tuner", "lora", "--max-steps", "20",
                     "--learning-rate", "1e-2", "--per-device-train-batch-size", "8", "--gradient-accumulation-steps", "1",
                     "--logging-steps", "5", "--save-steps", "10", "--val-ratio", "0.25"]) == 0
    log = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    for record in log:
        if "eval_accuracy" in record:
            print(f"step {record['step']:3d}  eval_loss {record['eval_loss']:.3f}  eval_accuracy {record['eval_accuracy']:.2f}")


if __name__ == "__main__":
    main()
