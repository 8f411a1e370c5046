"""``swiftune sft --task text-to-image`` and ``swiftune infer --task text-to-image``.

Training puts the tuner on the UNet of a Stable Diffusion pipeline (and on its text encoder with
``--train-text-encoder``) inside ``DenoiserLoss`` and trains it on sft's machinery. Every saved
adapter folder (checkpoints and ``final/``) holds swiftune's adapter and, for LoRA, diffusers'
``pytorch_lora_weights.safetensors``, which ``pipe.load_lora_weights(folder)`` loads as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .arguments import InferArguments, SftArguments
from .diffusers_lora import WEIGHT_NAME, diffusers_to_adapter_folder, write_diffusers_lora_of
from .diffusion_model import denoiser_of, diffusion_tuner_args, freeze_outside_denoiser, load_pipeline
from .task_run import TaskSetup, run_task
from .trainer import SwiftTrainer

#: Tuners checked on a Stable Diffusion UNet (train, save, reload with equal outputs).
DENOISER_TUNERS = "lora (also use_dora), adapter, bitfit, part, full, peft (e.g. LoHa, IA3)"


class CaptionImages(torch.utils.data.Dataset):
    """``image_caption`` examples -> ``pixel_values`` in [-1, 1] (resized, cropped, maybe flipped) and
    the caption's ``input_ids`` padded to the tokenizer's length; with ``tokenizer_2`` (SDXL, SD3) also
    ``input_ids_2``, with ``tokenizer_3`` (SD3's T5) ``input_ids_3``, and with ``time_ids`` (SDXL) the
    original size, crop corner and target size SDXL was trained with."""

    def __init__(self, examples: list[dict[str, Any]], tokenizer: Any, resolution: int, center_crop: bool,
                 random_flip: bool, tokenizer_2: Any = None, tokenizer_3: Any = None, time_ids: bool = False) -> None:
        self.examples, self.tokenizer, self.tokenizer_2, self.tokenizer_3 = examples, tokenizer, tokenizer_2, tokenizer_3
        self.resolution, self.center_crop, self.random_flip, self.time_ids = resolution, center_crop, random_flip, time_ids

    def __len__(self) -> int:
        return len(self.examples)

    def pixels(self, path: str) -> tuple[torch.Tensor, list[int]]:
        """The image tensor and its SDXL ``time_ids`` (original h, w, crop top, left, target h, w)."""
        from PIL import Image

        from ..data.images import open_image

        img = open_image(path)
        original = [img.height, img.width]
        scale = self.resolution / min(img.size)
        img = img.resize((max(self.resolution, round(img.width * scale)), max(self.resolution, round(img.height * scale))),
                         Image.BILINEAR)
        room_x, room_y = img.width - self.resolution, img.height - self.resolution
        if self.center_crop:
            left, top = room_x // 2, room_y // 2
        else:
            left, top = (int(torch.randint(0, r + 1, ()).item()) for r in (room_x, room_y))
        width = img.width
        img = img.crop((left, top, left + self.resolution, top + self.resolution))
        if self.random_flip and torch.rand(()) < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            left = width - left - self.resolution  # the crop's corner in the flipped image
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(self.resolution, self.resolution, 3)
        return data.permute(2, 0, 1).float() / 127.5 - 1.0, [*original, top, left, self.resolution, self.resolution]

    @staticmethod
    def _ids(tokenizer: Any, text: str, length: int | None = None) -> torch.Tensor:
        return tokenizer(text, max_length=length or tokenizer.model_max_length, padding="max_length", truncation=True,
                         return_tensors="pt").input_ids[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        example = self.examples[index]
        pixels, time_ids = self.pixels(example["image"])
        item = {"pixel_values": pixels, "input_ids": self._ids(self.tokenizer, example["text"])}
        if self.tokenizer_2 is not None:
            item["input_ids_2"] = self._ids(self.tokenizer_2, example["text"])
        if self.tokenizer_3 is not None:
            from .flow_match import MAX_SEQUENCE_LENGTH

            item["input_ids_3"] = self._ids(self.tokenizer_3, example["text"], MAX_SEQUENCE_LENGTH)
        if self.time_ids:
            item["time_ids"] = torch.tensor(time_ids, dtype=torch.float32)
        return item


class DiffusionTrainer(SwiftTrainer):
    """``SwiftTrainer`` that also writes diffusers' LoRA file beside each saved adapter."""

    def _write_adapters(self, swift: Any, output_dir: str | None) -> None:
        super()._write_adapters(swift, output_dir)
        if not self.args.should_save:
            return
        write_diffusers_lora_of(Path(output_dir or self.args.output_dir))


def default_resolution(pipe: Any) -> int:
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    return int(denoiser.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


def build_text_to_image(args: SftArguments, precision: str) -> TaskSetup:
    from .. import registries
    from ..config import parse_config
    from ..data.images import load_image_datasets

    pipe = load_pipeline(args.model)
    denoiser = denoiser_of(pipe)
    fields = set(registries.tuners.get(args.tuner).config_class.model_fields)
    tuner_args = diffusion_tuner_args(args.tuner_args, args.train_text_encoder, fields, denoiser.denoiser_name,
                                      denoiser.default_targets)
    tuner_config = parse_config({**tuner_args, "tuner": args.tuner})
    rows = load_image_datasets(args.dataset, "image_caption", seed=args.seed, skip_bad_rows=args.skip_bad_rows)
    resolution = args.resolution or default_resolution(pipe)
    train = CaptionImages(rows.train, pipe.tokenizer, resolution, args.center_crop, args.random_flip,
                          tokenizer_2=getattr(pipe, "tokenizer_2", None) if hasattr(denoiser, "text_encoder_2") else None,
                          tokenizer_3=getattr(pipe, "tokenizer_3", None) if hasattr(denoiser, "text_encoder_3") else None,
                          time_ids=denoiser.is_sdxl)
    swift = prepare_denoiser(denoiser, tuner_config, args)
    skipped = f", {len(rows.skipped)} bad row(s) skipped" if rows.skipped else ""
    return TaskSetup(
        swift=swift, tuner_config=tuner_config, train=train, trainer_class=DiffusionTrainer, label_names=[],
        banner=[f"data       {len(train):,} image-caption examples at {resolution}x{resolution}{skipped}",
                f"loss       {denoiser.prediction_type} prediction, {type(pipe.scheduler).__name__}, "
                f"{type(pipe).__name__}"],
        resolved={"resolution": resolution},
    )


def prepare_denoiser(denoiser: Any, tuner_config: Any, args: SftArguments) -> Any:
    """``Swift.prepare`` on the denoiser; a tuner that needs a transformers model is a clear error."""
    from ..api import Swift
    from ..errors import SwiftuneError

    if _needs_transformers(tuner_config):
        raise ConfigError(f"--tuner {args.tuner}: it needs a transformers model (prompt / prefix tokens); a diffusion "
                          f"UNet has none. Text-to-image takes: {DENOISER_TUNERS}")
    try:
        swift = Swift.prepare(denoiser, tuner_config, adapter_dtype=args.adapter_dtype)
    except SwiftuneError:
        raise
    except Exception as exc:  # noqa: BLE001 - a tuner written for transformers models fails in its own way
        raise ConfigError(f"--tuner {args.tuner}: cannot be put on a diffusers UNet ({type(exc).__name__}: {exc}); "
                          f"text-to-image takes: {DENOISER_TUNERS}") from exc
    freeze_outside_denoiser(swift, args.train_text_encoder, denoiser.denoiser_name)
    return swift


def _needs_transformers(tuner_config: Any) -> bool:
    from .. import registries

    tuner = registries.tuners.get(tuner_config.tuner)
    return bool(tuner.capabilities(tuner_config).needs_transformers_model)


def run_text_to_image(args: SftArguments) -> Any:
    """Train a tuner on a Stable Diffusion pipeline's UNet; returns an ``SftResult``."""
    if args.val_dataset:
        raise ConfigError("--val-dataset: text-to-image training has no evaluation loss; leave it out")
    return run_task(args, build_text_to_image)


# -- inference ------------------------------------------------------------------------------------
def adapter_onto(denoiser: Any, adapter: str, scratch: Path) -> tuple[Any, dict[str, Any]]:
    """(SwiftModel, run args) with ``adapter`` loaded: a swiftune adapter or sft run folder, or a
    folder (or file) holding only diffusers' LoRA file (converted into ``scratch``)."""
    from ..api import Swift
    from .rebuild import locate_adapter

    path = Path(adapter).expanduser()
    lora_file = path if path.is_file() else path / WEIGHT_NAME
    if lora_file.is_file() and not (path.is_dir() and (path / "adapter_config.json").is_file()):
        folder, run_args = diffusers_to_adapter_folder(lora_file, scratch), {}
    else:
        folder, run_args = locate_adapter(path)
    return Swift.from_pretrained(denoiser, folder), run_args


def run_text_to_image_infer(args: InferArguments) -> Path:
    """Draw ``--prompt`` into the image file ``--output``; returns its path."""
    import tempfile

    from .infer import inference_dtype
    from .rebuild import locate_adapter

    if not args.prompt:
        raise ConfigError("--prompt: text-to-image needs a prompt")
    if not args.output:
        raise ConfigError("--output: text-to-image needs the image file to write (e.g. --output image.png)")
    out = Path(args.output)
    fmt = _image_format(out)
    model = args.model
    if model is None and args.adapter:
        try:
            model = locate_adapter(args.adapter[0])[1].get("model")
        except ConfigError:
            model = None
    if not model:
        raise ConfigError("--model: give the Stable Diffusion pipeline folder or hub id (the adapter's args.json names none)")
    if len(args.adapter) > 1:
        raise ConfigError("--adapter: text-to-image takes one adapter")
    pipe = load_pipeline(model, dtype=inference_dtype(args.precision))
    with tempfile.TemporaryDirectory() as scratch:
        if args.adapter:
            swift, _ = adapter_onto(denoiser_of(pipe), args.adapter[0], Path(scratch))
            if args.merge:
                swift.merge_and_unload()
            swift.eval()
        if torch.cuda.is_available():
            pipe = pipe.to("cuda")
        generator = torch.Generator(device=pipe.device).manual_seed(args.seed)
        image = pipe(args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.num_inference_steps,
                     guidance_scale=args.guidance_scale, generator=generator).images[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    image.save(tmp, format=fmt)
    os.replace(tmp, out)
    print(f"wrote {out} ({image.width}x{image.height})", flush=True)
    return out


def _image_format(path: Path) -> str:
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--output: {path}: unknown image file type '{path.suffix}'; use .png, .jpg or .webp")
    return fmt
