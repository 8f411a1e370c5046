"""Diffusion pipelines (text-to-image): Stable Diffusion 1.x / 2.x, SDXL, SD3 and Flux by hub id.

They are diffusers pipeline folders (``model_index.json``), not transformers models: ``swiftune sft
--task text-to-image`` loads them with diffusers. Training covers the UNet pipelines with one CLIP text
encoder (SD 1.x / 2.x), SDXL and SD3 (a diffusion transformer, flow matching); Flux is listed so its
name resolves, and sft says it does not train it yet.
"""

from __future__ import annotations

from swiftune.model_family import ArchitectureKeys, ModelFamily

_NO_KEYS = ArchitectureKeys(embedding=None, layers=None, lm_head=None, attention=None, mlp=None)


def _pipeline(
    name: str, description: str, hf_ids: tuple[str, ...], pipeline_class: str, ms_ids: tuple[str, ...] = ()
) -> ModelFamily:
    """A diffusers pipeline family: every one is text-to-image, has no transformers keys and takes LoRA on
    the denoiser's attention projections (diffusers names them alike in the UNet and the transformer)."""
    return ModelFamily(
        name=name,
        description=description,
        hf_ids=hf_ids,
        ms_ids=ms_ids,
        architectures=(pipeline_class,),
        model_types=(name,),  # a label: diffusers pipelines have no config.model_type
        task="text-to-image",
        keys=_NO_KEYS,
        target_modules=("to_q", "to_k", "to_v", "to_out.0"),
    )


FAMILIES: tuple[ModelFamily, ...] = (
    _pipeline(
        "stable-diffusion",
        "Stable Diffusion 1.x / 2.x (UNet + CLIP text encoder); LoRA on the UNet's attention, "
        "loadable with diffusers' pipe.load_lora_weights",
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "CompVis/stable-diffusion-v1-4",
         "stabilityai/stable-diffusion-2-1", "stabilityai/stable-diffusion-2-1-base"),
        "StableDiffusionPipeline",
        ms_ids=("AI-ModelScope/stable-diffusion-v1-5",),
    ),
    _pipeline(
        "stable-diffusion-xl",
        "Stable Diffusion XL (UNet + two text encoders, size / crop conditioning); LoRA on the UNet "
        "(and both text encoders), loadable with diffusers' pipe.load_lora_weights",
        ("stabilityai/stable-diffusion-xl-base-1.0",),
        "StableDiffusionXLPipeline",
    ),
    _pipeline(
        "stable-diffusion-3",
        "Stable Diffusion 3 / 3.5 (diffusion transformer, flow matching); LoRA on the transformer's "
        "joint attention, loadable with diffusers' pipe.load_lora_weights",
        ("stabilityai/stable-diffusion-3-medium-diffusers", "stabilityai/stable-diffusion-3.5-medium"),
        "StableDiffusion3Pipeline",
    ),
    _pipeline(
        "flux",
        "FLUX.1 (diffusion transformer, flow matching); listed, not yet trained by sft",
        ("black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"),
        "FluxPipeline",
    ),
)
