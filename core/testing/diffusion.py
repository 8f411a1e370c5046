"""Tiny random Stable Diffusion and image-classification checkpoints built from configs (no download),
for tests, docs and the examples: a UNet with 8/16 block channels, a one-block VAE, a 2-layer CLIP
text encoder with a byte-level BPE tokenizer written on the fly, and a DDPM scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Characters of the tiny CLIP tokenizer's vocabulary (lower-case words of the examples' captions).
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_clip_tokenizer(folder: str | Path):
    """A ``CLIPTokenizer`` over single letters (plus their ``</w>`` word-end forms), saved in ``folder``."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"] + list(_LETTERS) + [c + "</w>" for c in _LETTERS]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _clip_tokenizer_then_seed(folder: Path, seed: int):
    """The tiny CLIP tokenizer in ``folder/_tokenizer``, then torch seeded: the weights made next are the seed's."""
    import torch

    tokenizer = tiny_clip_tokenizer(folder / "_tokenizer")
    torch.manual_seed(seed)
    return tokenizer


def _tiny_unet(**blocks: Any):
    """A two-level UNet on 8x8, 4-channel latents; ``blocks``: the pipeline's block types and conditioning."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
        **blocks,
    )


def _tiny_vae(**extra: Any):
    """The 16x16-image, 4-channel-latent VAE every tiny pipeline shares (``extra``: SD3's settings)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=4, sample_size=16, **extra,
    )


def _tiny_clip_text_config(tokenizer: Any, **extra: Any):
    """A two-layer CLIP text encoder's config over ``tiny_clip_tokenizer``'s vocabulary (a new one a call:
    saving a model writes its class into its config, so two encoders must not share one)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra,
    )


def tiny_sd_pipeline(folder: str | Path, *, prediction_type: str = "epsilon", seed: int = 0):
    """Save a tiny random ``StableDiffusionPipeline`` (16x16 images, 8x8 latents) to ``folder``; return it."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    folder = Path(folder)
    tokenizer = _clip_tokenizer_then_seed(folder, seed)
    unet = _tiny_unet(
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4,
    )
    vae = _tiny_vae()
    text_encoder = CLIPTextModel(_tiny_clip_text_config(tokenizer))
    scheduler = DDPMScheduler(num_train_timesteps=100, prediction_type=prediction_type, clip_sample=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def write_caption_images(folder: str | Path, n: int = 8, size: int = 16) -> Path:
    """``n`` generated images with captions (a red or a blue square) and ``data.jsonl`` naming them."""
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        color, caption = ((220, 30, 30), "a red square") if i % 2 == 0 else ((30, 30, 220), "a blue square")
        img = Image.new("RGB", (size, size), (240, 240, 240))
        img.paste(color, (size // 4 + i % 3 - 1, size // 4, 3 * size // 4 + i % 3 - 1, 3 * size // 4))
        img.save(folder / "images" / f"{i}.png")
        rows.append({"image": f"images/{i}.png", "text": caption})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_class_images(folder: str | Path, per_class: int = 6, size: int = 16) -> Path:
    """An image folder of three classes (``top``, ``middle``, ``bottom``: where a bright band lies)."""
    from PIL import Image

    folder = Path(folder)
    for label, row in (("top", 0), ("middle", 1), ("bottom", 2)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("RGB", (size, size), (20 + 10 * i, 20, 20))
            band = size // 3
            img.paste((250, 250, 250), (2, row * band, size - 2, row * band + band))
            img.save(folder / label / f"{i}.png")
    return folder


def tiny_sdxl_pipeline(folder: str | Path, *, seed: int = 0):
    """Save a tiny random ``StableDiffusionXLPipeline`` (two CLIP text encoders, the second with a
    projection; a UNet with ``text_time`` added conditioning; 16x16 images) to ``folder``; return it."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    tokenizer = _clip_tokenizer_then_seed(folder, seed)
    unet = _tiny_unet(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=4, projection_class_embeddings_input_dim=16 + 6 * 4, cross_attention_dim=32,
    )
    vae = _tiny_vae()
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(_tiny_clip_text_config(tokenizer, projection_dim=16)),
        text_encoder_2=CLIPTextModelWithProjection(_tiny_clip_text_config(tokenizer, projection_dim=16)),
        tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet, scheduler=EulerDiscreteScheduler(num_train_timesteps=100, steps_offset=1), add_watermarker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def tiny_sd3_pipeline(folder: str | Path, *, seed: int = 0):
    """Save a tiny random ``StableDiffusion3Pipeline`` (an SD3 transformer, two CLIP encoders with
    projections, a one-layer T5 encoder, a flow-matching scheduler; 16x16 images) to ``folder``."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from .tokenizers import tiny_tokenizer

    folder = Path(folder)
    tokenizer, t5_tokenizer = tiny_clip_tokenizer(folder / "_tokenizer"), tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=2,
        caption_projection_dim=16, joint_attention_dim=32, pooled_projection_dim=32, out_channels=4,
    )
    vae = _tiny_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, vae=vae,
        text_encoder=CLIPTextModelWithProjection(_tiny_clip_text_config(tokenizer, projection_dim=16)),
        text_encoder_2=CLIPTextModelWithProjection(_tiny_clip_text_config(tokenizer, projection_dim=16)),
        text_encoder_3=T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=32, d_ff=64, d_kv=8, num_layers=1,
                                               num_heads=4)),
        tokenizer=tokenizer, tokenizer_2=tokenizer, tokenizer_3=t5_tokenizer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=100, shift=3.0),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe
