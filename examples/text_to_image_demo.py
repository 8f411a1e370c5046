"""Text-to-image LoRA end to end on a tiny random Stable Diffusion pipeline, on CPU in well under a minute.

1. builds the pipeline (UNet, VAE, CLIP text encoder, tokenizer, DDPM scheduler; random weights,
   16x16 images) and 8 captioned images, all under ``--workdir`` (nothing is downloaded);
2. ``swiftune sft --task text-to-image`` trains LoRA on the UNet and the text encoder;
3. ``swiftune infer --task text-to-image`` draws a prompt into a PNG;
4. diffusers' own ``pipe.load_lora_weights(run/final)`` loads the adapter and gives the UNet output
   swiftune's adapter gives (the largest difference is printed).

The pictures mean nothing (the weights are random); the point is the commands and the files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from swiftune import Swift, cli
from swiftune.recipes.diffusion_model import denoiser_of, load_pipeline
from swiftune.recipes.runtime import quiet_libraries
from swiftune.testing.diffusion import tiny_sd_pipeline, write_caption_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="output/text-to-image-demo", help="where the pipeline, data and run go")
    workdir = Path(parser.parse_args().workdir)
    quiet_libraries()
    start = time.time()
    sd, run = workdir / "tiny-sd", workdir / "run"
    if not (sd / "model_index.json").is_file():
        tiny_sd_pipeline(sd)
    data = write_caption_images(workdir / "captions", n=8)
    print(f"pipeline {sd}, data {data}")

    code = cli.main(["sft", "--task", "text-to-image", "--model", str(sd), "--dataset", str(data),
                     "--output-dir", str(run), "--overwrite-output-dir", "--tuner", "lora", "--r", "4",
                     "--lora-alpha", "8", "--train-text-encoder", "true", "--max-steps", "30",
                     "--per-device-train-batch-size", "8", "--gradient-accumulation-steps", "1",
                     "--learning-rate", "2e-2", "--logging-steps", "10", "--save-steps", "30"])
    assert code == 0, code
    image = workdir / "red-square.png"
    assert cli.main(["infer", "--task", "text-to-image", "--adapter", str(run), "--prompt", "a red square",
                     "--output", str(image), "--num-inference-steps", "10"]) == 0

    from diffusers import StableDiffusionPipeline

    theirs = StableDiffusionPipeline.from_pretrained(str(sd), use_safetensors=True)
    theirs.load_lora_weights(str(run / "final"))
    ours = load_pipeline(str(sd))
    Swift.from_pretrained(denoiser_of(ours), run / "final")
    gen = torch.Generator().manual_seed(0)
    latents, hidden = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 16, 16, generator=gen)
    with torch.no_grad():
        diff = (theirs.unet(latents, 50, hidden).sample - ours.unet(latents, 50, hidden).sample).abs().max().item()
    print(f"\nrun folder: {run} (final/ holds swiftune's adapter and diffusers' pytorch_lora_weights.safetensors)")
    print(f"diffusers load_lora_weights vs swiftune: largest UNet output difference {diff:.2e}")
    print(f"done in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
