"""sft / infer for vision-language models (Qwen2-VL, Qwen2.5-VL, LLaVA): data, freezing, generation.

The loader hands back an ``ImageTextProcessor`` instead of a tokenizer for these models; sft and
infer ask ``is_image_text`` and take the few steps that differ from here:

* data: chat rows with ``images`` (and image-caption rows, as "describe the image" chats) are
  encoded with their pixel inputs; loss on the assistant answers only.
* freezing (ms-swift's flags): ``freeze_vit`` / ``freeze_aligner`` (default true) put the vision
  tower / projector into the tuner's ``exclude_modules`` (LoRA, adapter, ...), ``freeze_parameters``
  (full) or ``exclude_parameters`` (part), so the default "all-linear" targets only the language
  model. With ``--freeze_vit false`` the tuner covers the vision tower as well (LoRA on its linear
  layers, or its weights trained in full with ``--tuner full``).
* generation: prompts carry their images' pixel inputs (``--images`` in chat, ``images`` in batch rows).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from ..data.errors import DataError
from ..data.multimodal import caption_chat, encode_image_chat, prompt_inputs
from ..errors import ConfigError
from ..loading.vision import is_image_text  # noqa: F401 - sft and infer ask it here
from .generation import Generator

#: kind -> (vision tower prefix, projector prefix) of transformers' module names.
_PARTS = {"qwen2-vl": ("model.visual", "model.visual.merger"),
          "llava": ("model.vision_tower", "model.multi_modal_projector")}
#: Tuner config fields that keep modules / parameters out, by priority.
_EXCLUDE_FIELDS = ("exclude_modules", "freeze_parameters", "exclude_parameters")


def frozen_parts_regex(kind: str, freeze_vit: bool, freeze_aligner: bool) -> str | None:
    """A regex (matched in full) of the module / parameter names that stay frozen, or None."""
    tower, aligner = (re.escape(p) for p in _PARTS[kind])
    parts = []
    if freeze_vit:
        parts.append(rf"{tower}(?!\.merger(?:\.|$))(?:\..*)?" if kind == "qwen2-vl" else rf"{tower}(?:\..*)?")
    if freeze_aligner:
        parts.append(rf"{aligner}(?:\..*)?")
    return "|".join(f"(?:{p})" for p in parts) or None


def frozen_parts_config(tuner_config: Any, kind: str, freeze_vit: bool, freeze_aligner: bool) -> Any:
    """``tuner_config`` with the frozen parts added to its exclusion field (the user's kept too)."""
    regex = frozen_parts_regex(kind, freeze_vit, freeze_aligner)
    field = next((f for f in _EXCLUDE_FIELDS if f in type(tuner_config).model_fields), None)
    if regex is None or field is None:
        return tuner_config
    given = getattr(tuner_config, field)
    if isinstance(given, str):
        regex = f"(?:{given})|{regex}"
    elif given:  # a list of names / suffixes, as a regex
        regex = "|".join([*(rf"(?:.*\.)?{re.escape(n)}" for n in given), regex])
    return tuner_config.model_copy(update={field: regex})


def limit_pixels(processor: Any, max_pixels: int | None) -> None:
    """Apply ``--max_pixels`` (Qwen2-VL's image area cap); other models take fixed-size images."""
    if max_pixels is None or processor is None:
        return
    if processor.kind != "qwen2-vl":
        raise ConfigError("--max_pixels: for Qwen2-VL / Qwen2.5-VL only (LLaVA resizes every image to one size)")
    processor.max_pixels = max_pixels


def check_text_only(rows: Sequence[dict], model: str) -> None:
    """A text-only model must not silently drop the images of image rows."""
    if any(r.get("images") or ("image" in r and "messages" not in r) for r in rows):
        raise ConfigError(f"--dataset: the rows hold images but {model} is not a vision-language model swiftune "
                          "can feed them to (qwen2-vl, qwen2.5-vl, llava: swiftune list models)")


def tokenize_image_rows(rows: Sequence[dict], processor: Any, renderer: Any, max_length: int,
                        truncation: str) -> tuple[list[dict], Any]:
    """Encoded examples (ids, labels -100 outside answers, pixel inputs) and their ``TokenizeStats``."""
    from ..data import TokenizeStats

    stats = TokenizeStats(kind="messages", template=getattr(renderer, "name", ""))
    out = []
    for i, row in enumerate(rows):
        stats.examples += 1
        try:
            encoded = encode_image_chat(caption_chat(row), processor, renderer, max_length, truncation)
        except DataError as exc:
            raise DataError(f"example {i}: {exc}") from None
        if encoded is None:
            stats.dropped_too_long += 1
            continue
        if all(t == -100 for t in encoded["labels"]):
            stats.dropped_no_target += 1
            continue
        out.append(encoded)
        stats.tokens += len(encoded["input_ids"])
        stats.trained_tokens += sum(1 for t in encoded["labels"] if t != -100)
        stats.longest = max(stats.longest, len(encoded["input_ids"]))
    stats.kept = stats.rows = len(out)
    if not out:
        raise DataError(f"no trainable example left of {len(rows)} ({stats.summary()})")
    return out, stats


class ImageTextCollator:
    """Right-pads ids / labels / masks; concatenates the images' pixel inputs of the batch."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)

        def padded(key: str, value: int) -> torch.Tensor:
            return torch.tensor([list(f[key]) + [value] * (width - len(f[key])) for f in features], dtype=torch.long)

        batch = {"input_ids": padded("input_ids", self.pad_id), "labels": padded("labels", -100),
                 "attention_mask": padded("attention_mask", 0)}
        if "mm_token_type_ids" in features[0]:
            batch["mm_token_type_ids"] = padded("mm_token_type_ids", 0)
        for key in ("pixel_values", "image_grid_thw"):
            parts = [torch.as_tensor(f[key]) for f in features if key in f]
            if parts:
                batch[key] = torch.cat(parts)
        return batch


class VisionGenerator(Generator):
    """``Generator`` whose prompts carry images: ``encode_counted(messages, images)``; in chat the
    ``--images`` go with the first user turn."""

    def __init__(self, model: Any, processor: Any, template: Any, max_length: int = 2048,
                 images: Sequence[str] = ()) -> None:
        self.processor = processor
        self.images = list(images)
        self._pixels: dict[int, dict[str, Any]] = {}
        super().__init__(model=model, tokenizer=processor.tokenizer, template=template, max_length=max_length)

    def encode_counted(self, messages: Sequence[dict], images: Sequence[Any] | None = None) -> tuple[list[int], int]:
        ids, pixels = prompt_inputs(messages, self.images if images is None else images, self.processor, self.template)
        if len(ids) > self.max_length:
            raise ConfigError(f"the prompt with its images has {len(ids)} tokens, over --max-length {self.max_length} "
                              "(image tokens cannot be cut); raise --max-length")
        prompt = _ImagePrompt(ids)
        self._pixels[id(prompt)] = pixels
        return prompt, 0

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], gen: Any, streamer: Any = None) -> list[str]:
        ids, mask = self.left_padded(prompts)
        width = ids.shape[1]
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        types = [self.processor.token_types(list(row)) for row in ids.tolist()]
        if types[0] is not None:
            inputs["mm_token_type_ids"] = torch.tensor(types, dtype=torch.long)
        pixels = [self._pixels.pop(id(p), {}) for p in prompts]
        for key in ("pixel_values", "image_grid_thw"):
            parts = [p[key] for p in pixels if key in p]
            if parts:
                inputs[key] = torch.cat(parts)
        device = self._device()
        dtype = next(self.model.parameters()).dtype
        inputs = {k: v.to(device, dtype=dtype if k == "pixel_values" else v.dtype) for k, v in inputs.items()}
        out = self.model.generate(**inputs, streamer=streamer, **self.generation_kwargs(gen))
        return [self.decode(row[width:]) for row in out.cpu()]


class _ImagePrompt(list):
    """Prompt token ids; the generator keeps their pixel inputs under this object's id until generated."""


def tokenize_train_val(train_rows: Sequence[dict], val_rows: Sequence[dict], processor: Any, renderer: Any,
                       args: Any) -> tuple[list[dict], Any, list[dict] | None]:
    """sft's (train examples, their stats, eval examples or None) for a vision-language model."""
    if args.packing:
        raise ConfigError("--packing: not for vision-language models (each example keeps its own images)")
    train, stats = tokenize_image_rows(train_rows, processor, renderer, args.max_length, args.truncation)
    val = tokenize_image_rows(val_rows, processor, renderer, args.max_length, args.truncation)[0] if val_rows else None
    return train, stats, val


def lean_arguments(args: Any) -> Any:
    """sft's arguments with the lean paths that assume a text-only batch turned off (padding-free
    rows, logits at labelled positions, the fused head loss: the model's forward takes pixel inputs)."""
    return args.model_copy(update={"padding_free": False, "answer_logits_only": False, "fused_head_loss": False})


def row_images(row: dict, source: str, where: str) -> list[Any]:
    """A batch-infer row's images, resolved against the input file's folder (errors name the row)."""
    import os

    from ..data.multimodal import row_image_paths
    from ..data.spec import parse_spec

    try:
        return row_image_paths(row, os.path.expanduser(parse_spec(source).name))
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def text_only_command(processor: Any, model: str, command: str) -> None:
    """Commands that do not feed images yet (rlhf, deploy, eval) refuse a vision-language model clearly."""
    if is_image_text(processor):
        raise ConfigError(f"{command}: {model} is a vision-language model; swiftune's {command} handles text-only "
                          "models so far (sft, infer and export take vision-language models)")
