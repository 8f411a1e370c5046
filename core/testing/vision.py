"""Tiny random vision-language models saved as model folders, and generated images, for tests and examples.

``tiny_vision_model(folder, "qwen2-vl")`` (or ``"qwen2.5-vl"``, ``"llava"``) writes a model folder that
loads like a real checkpoint (config, safetensors weights, tokenizer, image processor): a Qwen2-VL
with a one-block vision tower, a Qwen2.5-VL with two (windowed and full attention), or a LLaVA with a one-layer CLIP vision tower and a two-layer llama, built
from transformers' config classes; the tokenizer is ``tiny_tokenizer`` plus the image tokens, and
the image processor the PIL one (no torchvision). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .tokenizers import CHATML_TEMPLATE, tiny_tokenizer

#: Words the tiny tokenizer knows on top of its default vocabulary (caption data of the tests).
VISION_WORDS = ("Describe", "image", "picture", "red", "green", "blue", "square", "circle", "colour", "shows", "This")
QWEN2_VL_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
LLAVA_TOKEN = "<image>"
KINDS = ("qwen2-vl", "qwen2.5-vl", "llava")
#: Wider than transformers' 0.02, so the tiny output head can express a confident answer in a few steps.
INIT_RANGE = 0.3


def _tokenizer(extra_special: Sequence[str]):
    tok = tiny_tokenizer(CHATML_TEMPLATE, extra_words=VISION_WORDS)
    tok.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return tok


def _qwen2_vl(seed: int, version: str = "2"):
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = _tokenizer(QWEN2_VL_TOKENS)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN2_VL_TOKENS}
    text = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, initializer_range=INIT_RANGE,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]})
    vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    config_class, model_class = Qwen2VLConfig, Qwen2VLForConditionalGeneration
    if version == "2.5":  # windowed attention in the vision tower, an MLP merger to the text width
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3, window_size=56,
                      fullatt_block_indexes=[1])
        config_class, model_class = Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    config = config_class(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                           pad_token_id=tok.pad_token_id, initializer_range=INIT_RANGE)
    # 28x28 .. 56x56 pixels: 4 to 16 patches, 1 to 4 image tokens per image.
    processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 28 * 28, "longest_edge": 56 * 56}, patch_size=14,
                                         merge_size=2, temporal_patch_size=2)
    return _build(model_class, config, seed), tok, processor


def _llava(seed: int):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = _tokenizer((LLAVA_TOKEN,))
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                              image_size=28, patch_size=14, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=tok.pad_token_id, initializer_range=INIT_RANGE)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids(LLAVA_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-1, image_seq_length=4,
                         projector_hidden_act="gelu")
    processor = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    return _build(LlavaForConditionalGeneration, config, seed), tok, processor


def _build(cls, config, seed: int):
    import torch

    torch.manual_seed(seed)
    return cls(config).eval()


def tiny_vision_model(folder: str | Path, kind: str = "qwen2-vl", seed: int = 0) -> Path:
    """Write a tiny random ``kind`` ("qwen2-vl", "qwen2.5-vl" or "llava") model folder; returns it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    model, tok, processor = _llava(seed) if kind == "llava" else _qwen2_vl(seed, "2.5" if kind == "qwen2.5-vl" else "2")
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


#: Colours of ``make_images``: image i is filled with COLOURS[i % 3].
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220)}


def make_images(folder: str | Path, n: int = 3, size: tuple[int, int] = (40, 32)) -> list[Path]:
    """``n`` small PNG files (red, green, blue, red, ...) with a white square; returns their paths."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    names = list(COLOURS)
    for i in range(n):
        image = Image.new("RGB", size, COLOURS[names[i % 3]])
        ImageDraw.Draw(image).rectangle((4 + i % 5, 4, 14 + i % 5, 14), fill=(255, 255, 255))
        path = folder / f"{names[i % 3]}-{i}.png"
        image.save(path)
        paths.append(path)
    return paths
