"""Vision-language models (Qwen2-VL, Qwen2.5-VL, LLaVA) with transformers' own classes.

A model is vision-language when its config's ``model_type`` is one of ``VISION_LANGUAGE_TYPES``;
it loads with ``AutoModelForImageTextToText`` and comes with an ``ImageTextProcessor``: the model's
own image processor (``AutoImageProcessor``; the PIL backend where torchvision is absent) and its
tokenizer. The processor turns each ``<image>`` tag of a text into the model's image placeholder,
as many image tokens as the image processor's output asks for, exactly as transformers'
``Qwen2VLProcessor`` / ``LlavaProcessor`` do. swiftune composes the two itself because
``Qwen2VLProcessor`` cannot be built without torchvision (it requires a video processor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import ModelLoadError

#: The tag ms-swift's multimodal rows put where an image goes in a message.
IMAGE_TAG = "<image>"

#: config.model_type -> how its image placeholder is laid out ("qwen2-vl" or "llava").
VISION_LANGUAGE_TYPES = {"qwen2_vl": "qwen2-vl", "qwen2_5_vl": "qwen2-vl", "llava": "llava"}


def vision_language_kind(config: Any) -> str | None:
    """"qwen2-vl" / "llava" for a supported vision-language config (object, dict or folder), else None."""
    if isinstance(config, (str, Path)):
        file = Path(config) / "config.json"
        try:
            config = json.loads(file.read_text()) if file.is_file() else {}
        except (OSError, json.JSONDecodeError):
            return None
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    return VISION_LANGUAGE_TYPES.get(model_type)


@dataclass
class ImageTextProcessor:
    """Tokenizer + image processor of one vision-language model, and its image placeholder rule."""

    tokenizer: Any
    image_processor: Any
    kind: str
    image_token: str
    #: Qwen2-VL wraps each image's tokens in <|vision_start|> ... <|vision_end|>.
    before: str = ""
    after: str = ""
    #: Qwen2-VL: patches merged into one token per side (tokens = t*h*w / merge_size**2).
    merge_size: int = 1
    #: LLaVA: the vision tower's patch size and the tokens it adds (CLS) or drops (strategy "default").
    patch_size: int = 14
    extra_tokens: int = 0
    #: Qwen2-VL: the largest image area in pixels (ms-swift's max_pixels); None: the image processor's own.
    max_pixels: int | None = None

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.image_token)

    def process_images(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[int]]:
        """(the model's pixel inputs as tensors, the number of image tokens of each image)."""
        if not images:
            return {}, []
        kwargs = {}
        if self.max_pixels is not None:
            size = self.image_processor.size
            kwargs["size"] = {"shortest_edge": min(size["shortest_edge"], self.max_pixels), "longest_edge": self.max_pixels}
        out = dict(self.image_processor(images=list(images), return_tensors="pt", **kwargs))
        if self.kind == "qwen2-vl":
            grid = out["image_grid_thw"]
            counts = [int(g.prod()) // self.merge_size**2 for g in grid]
        else:
            height, width = out["pixel_values"].shape[-2:]
            counts = [(height // self.patch_size) * (width // self.patch_size) + self.extra_tokens] * len(images)
        return {k: out[k] for k in ("pixel_values", "image_grid_thw") if k in out}, counts

    def expand(self, text: str, counts: Sequence[int]) -> str:
        """``text`` with its i-th ``<image>`` tag replaced by image i's placeholder tokens."""
        pieces = text.split(IMAGE_TAG)
        if len(pieces) - 1 != len(counts):
            raise ValueError(f"{len(pieces) - 1} {IMAGE_TAG} tag(s) in the text for {len(counts)} image(s)")
        out = [pieces[0]]
        for count, piece in zip(counts, pieces[1:]):
            out += [self.before, self.image_token * count, self.after, piece]
        return "".join(out)

    def token_types(self, ids: Sequence[int]) -> list[int] | None:
        """Qwen2-VL's ``mm_token_type_ids`` (1 on image tokens; its M-RoPE needs them), else None."""
        if self.kind != "qwen2-vl":
            return None
        image = self.image_token_id
        return [1 if t == image else 0 for t in ids]

    def save_pretrained(self, folder: str | Path) -> None:
        """Tokenizer and image processor files, as the model's own folder has them."""
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)


def _processor_config(folder: Path) -> dict[str, Any]:
    file = folder / "processor_config.json"
    try:
        return json.loads(file.read_text()) if file.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{file}: cannot read it ({exc})") from None


def image_text_processor(folder: str | Path, config: Any, tokenizer: Any) -> ImageTextProcessor:
    """The ``ImageTextProcessor`` of the vision-language model in ``folder`` (config: its config)."""
    import transformers

    folder = Path(folder)
    kind = vision_language_kind(config)
    try:
        image_processor = transformers.AutoImageProcessor.from_pretrained(folder)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise ModelLoadError(f"{folder}: cannot load the image processor of this vision-language model ({exc})") from exc
    extra = _processor_config(folder)
    if kind == "qwen2-vl":
        token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        return ImageTextProcessor(tokenizer, image_processor, kind, token, before="<|vision_start|>",
                                  after="<|vision_end|>", merge_size=int(getattr(image_processor, "merge_size", 2)))
    vision = config.vision_config
    added = extra.get("num_additional_image_tokens", 1 if vision.model_type == "clip_vision_model" else 0)
    strategy = extra.get("vision_feature_select_strategy", config.vision_feature_select_strategy)
    token = extra.get("image_token") or tokenizer.convert_ids_to_tokens(config.image_token_id)
    return ImageTextProcessor(tokenizer, image_processor, kind, token,
                              patch_size=int(extra.get("patch_size", vision.patch_size)),
                              extra_tokens=added - (1 if strategy == "default" else 0))


def is_image_text(processor: Any) -> bool:
    """Whether a loader returned an ``ImageTextProcessor`` (a vision-language model) for a tokenizer."""
    return isinstance(processor, ImageTextProcessor)
