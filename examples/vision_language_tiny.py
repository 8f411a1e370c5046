"""Vision-language fine-tuning end to end on a tiny random Qwen2-VL (or Qwen2.5-VL, LLaVA), in about a minute on CPU.

    python examples/vision_language_tiny.py [--kind qwen2-vl|qwen2.5-vl|llava] [--workdir vlm-demo]

It writes a tiny model folder (transformers' config classes, random weights, the PIL image
processor, a word-level tokenizer), three coloured PNG images and ms-swift style rows
(``messages`` with ``<image>`` tags plus ``images`` paths relative to the data file), then runs
the same commands a real model takes: ``swiftune sft``, ``swiftune infer`` on rows with images
and ``swiftune export``. See docs/multimodal.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from swiftune.testing.vision import make_images, tiny_vision_model


def swiftune(*args: str) -> None:
    command = [sys.executable, "-m", "swiftune", *args]
    print("$ swiftune", " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("qwen2-vl", "qwen2.5-vl", "llava"), default="qwen2-vl")
    parser.add_argument("--workdir", default="vlm-demo")
    opts = parser.parse_args()
    work = Path(opts.workdir)
    model = tiny_vision_model(work / f"tiny-{opts.kind}", opts.kind)
    images = make_images(work / "data" / "images", 3)
    rows = [{"messages": [{"role": "user", "content": "<image>What colour is the square ?"},
                          {"role": "assistant", "content": f"This image shows {p.name.split('-')[0]}"}],
             "images": [f"images/{p.name}"]} for p in images]
    data = work / "data" / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))

    run = work / "output"
    swiftune("sft", "--model", str(model), "--dataset", str(data), "--output_dir", str(run), "--overwrite_output_dir",
             "true", "--train_type", "lora", "--max_steps", "20", "--learning_rate", "5e-2", "--val_ratio", "0",
             "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--logging_steps", "5")
    swiftune("infer", "--adapters", str(run), "--input", str(data), "--output", str(work / "predictions.jsonl"),
             "--max_new_tokens", "6")
    for line in (work / "predictions.jsonl").read_text().splitlines()[:3]:
        row = json.loads(line)
        print(f"{row['images'][0]}: {row['response']!r}")
    swiftune("export", "--adapters", str(run), "--output", str(work / "merged"), "--overwrite", "true")


if __name__ == "__main__":
    main()
