"""Vision-language families transformers implements (no remote code): Qwen2-VL, Qwen2.5-VL, LLaVA.

They load with ``AutoModelForImageTextToText`` and an image processor (see ``swiftune.loading.vision``);
``swiftune sft`` trains them on chat rows with images. Tuners target the language model's linear
layers; the vision tower and its projector (Qwen2-VL's merger, LLaVA's multi_modal_projector) stay
frozen unless ``--freeze_vit false`` / ``--freeze_aligner false`` (see docs/multimodal.md).
"""

from __future__ import annotations

from swiftune.model_family import ArchitectureKeys, ModelFamily

#: The language model sits under ``model.language_model`` (transformers 5); older checkpoints' names
#: are converted on load.
VLM_KEYS = ArchitectureKeys(
    embedding="model.language_model.embed_tokens", layers="model.language_model.layers", lm_head="lm_head",
    attention="self_attn", mlp="mlp",
)


def _qwen_vl(name: str, description: str, ids: tuple[str, ...], architecture: str, model_type: str) -> ModelFamily:
    """A Qwen vision-language family: the same ids on the HF hub and ModelScope, Qwen's chat template."""
    return ModelFamily(
        name=name, description=description, hf_ids=ids, ms_ids=ids, architectures=(architecture,),
        model_types=(model_type,), template="qwen", keys=VLM_KEYS,
    )


FAMILIES: tuple[ModelFamily, ...] = (
    _qwen_vl(
        "qwen2-vl",
        "Qwen2-VL vision-language chat (images in chat rows); LoRA on the language model, vision tower frozen by default",
        ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen2-VL-72B-Instruct", "Qwen/Qwen2-VL-2B"),
        "Qwen2VLForConditionalGeneration",
        "qwen2_vl",
    ),
    _qwen_vl(
        "qwen2.5-vl",
        "Qwen2.5-VL vision-language chat (images in chat rows); LoRA on the language model, vision tower frozen by default",
        ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-32B-Instruct",
         "Qwen/Qwen2.5-VL-72B-Instruct"),
        "Qwen2_5_VLForConditionalGeneration",
        "qwen2_5_vl",
    ),
    ModelFamily(
        name="llava",
        description="LLaVA-1.5 style (CLIP vision tower + projector + llama): images in chat rows; LoRA on the language model",
        hf_ids=("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf", "llava-hf/bakLlava-v1-hf"),
        ms_ids=("swift/llava-1.5-7b-hf", "swift/llava-1.5-13b-hf"),
        architectures=("LlavaForConditionalGeneration",),
        model_types=("llava",),
        template="llava1_5",
        keys=VLM_KEYS,
    ),
)
