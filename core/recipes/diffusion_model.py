"""The trainable side of a Stable Diffusion pipeline: ``DenoiserLoss`` holds the UNet, text encoder
and VAE of a diffusers pipeline as submodules named as in the pipeline (``unet``, ``text_encoder``,
``vae``), and its ``forward`` is the standard noise-prediction loss.

One ``nn.Module`` with a loss in ``forward`` is what the transformers ``Trainer`` and
``Swift.prepare`` take, so text-to-image runs on sft's machinery (checkpoints, resume, run log).
Adapter keys then read ``unet.<module>`` / ``text_encoder.<module>``: diffusers' own LoRA prefixes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

#: diffusers' LoRA targets for the UNet's attention and for CLIP's text encoder (its training scripts' choice).
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


class DenoiserLoss(nn.Module):
    """``forward(pixel_values, input_ids)`` -> ``{"loss": mse(prediction, target)}``.

    The image is encoded by the frozen VAE, noised at a random timestep by the pipeline's scheduler,
    and the UNet predicts the noise (``epsilon``) or the velocity (``v_prediction``), as the
    scheduler's ``prediction_type`` says, conditioned on the text encoder's hidden states.

    SDXL (``text_encoder_2`` given): the condition is both encoders' penultimate hidden states side
    by side, plus the second encoder's pooled embedding and the size / crop ``time_ids``, as
    diffusers' ``StableDiffusionXLPipeline.encode_prompt`` builds them.
    """

    denoiser_name = "unet"
    default_targets = UNET_TARGETS

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, vae: nn.Module, scheduler: Any,
                 text_encoder_2: nn.Module | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder
        if text_encoder_2 is not None:
            self.text_encoder_2 = text_encoder_2
        self.vae = vae
        self.noise_scheduler = scheduler  # not a module: diffusers schedulers are plain config objects
        prediction = scheduler.config.get("prediction_type", "epsilon")
        if prediction not in ("epsilon", "v_prediction"):
            raise ConfigError(f"scheduler prediction_type '{prediction}': text-to-image training supports epsilon and v_prediction")
        self.prediction_type = prediction

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **_: Any) -> None:
        """``--gradient-checkpointing``, called by the Trainer: the UNet's (and trained text encoders') blocks
        recompute their activations in backward."""
        self.unet.enable_gradient_checkpointing()
        for encoder in (self.text_encoder, getattr(self, "text_encoder_2", None)):
            if encoder is not None and any(p.requires_grad for p in encoder.parameters()):
                enable = getattr(encoder, "activation_checkpointing_enable", None)  # transformers >= 5 name
                if enable is not None:
                    enable(activation_checkpointing_kwargs={"use_reentrant": False})
                else:
                    encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    @property
    def is_activation_checkpointing(self) -> bool:
        return bool(getattr(self.unet, "is_gradient_checkpointing", False))

    @property
    def is_sdxl(self) -> bool:
        return hasattr(self, "text_encoder_2")

    def _encoder_grad(self, encoder: nn.Module) -> Any:
        trains = any(p.requires_grad for p in encoder.parameters())
        return torch.set_grad_enabled(trains and torch.is_grad_enabled())

    def condition(self, input_ids: torch.Tensor, input_ids_2: torch.Tensor | None = None,
                  time_ids: torch.Tensor | None = None) -> dict[str, Any]:
        """The UNet's conditioning keyword arguments for a batch of captions."""
        if not self.is_sdxl:
            with self._encoder_grad(self.text_encoder):
                return {"encoder_hidden_states": self.text_encoder(input_ids)[0]}
        if input_ids_2 is None or time_ids is None:
            raise ConfigError("an SDXL batch needs input_ids_2 (the second tokenizer's) and time_ids")
        with self._encoder_grad(self.text_encoder):
            first = self.text_encoder(input_ids, output_hidden_states=True).hidden_states[-2]
        with self._encoder_grad(self.text_encoder_2):
            out = self.text_encoder_2(input_ids_2, output_hidden_states=True)
        hidden = torch.cat([first, out.hidden_states[-2]], dim=-1)
        added = {"text_embeds": out[0], "time_ids": time_ids.to(hidden.dtype)}
        return {"encoder_hidden_states": hidden, "added_cond_kwargs": added}

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, input_ids_2: torch.Tensor | None = None,
                time_ids: torch.Tensor | None = None, **_: Any) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            latents = self.vae.encode(pixel_values.to(self.vae.dtype)).latent_dist.sample()
            latents = latents * self.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), device=latents.device).long()
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "epsilon":
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        prediction = self.unet(noisy, timesteps, **self.condition(input_ids, input_ids_2, time_ids), return_dict=False)[0]
        return {"loss": F.mse_loss(prediction.float(), target.float())}


def resolve_pipeline_folder(name: str) -> Path:
    """A local diffusers pipeline folder (with ``model_index.json``), or a hub id downloaded to one."""
    from ..loading import hub

    path = Path(name).expanduser()
    if path.is_dir():
        folder = path
    elif name.startswith("ms::"):
        folder = hub.ms_snapshot(name[4:])
    elif path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1 and not name.startswith("hf::"):
        raise ConfigError(f"--model: {name}: no such diffusers pipeline folder (expected a folder with model_index.json or a hub id)")
    else:
        folder = hub.hf_snapshot(name.removeprefix("hf::"))
    if not (folder / "model_index.json").is_file():
        raise ConfigError(f"--model: {folder} is not a diffusers pipeline folder (no model_index.json)")
    return folder


def load_pipeline(name: str, dtype: torch.dtype | None = None) -> Any:
    """The diffusers pipeline of ``name`` (safetensors weights only; no safety checker is required)."""
    try:
        from diffusers import DiffusionPipeline
    except ImportError as exc:
        raise ConfigError("text-to-image needs diffusers: pip install 'swiftune[diffusion]'") from exc
    folder = resolve_pipeline_folder(name)
    kwargs: dict[str, Any] = {"use_safetensors": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        pipe = DiffusionPipeline.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ConfigError(f"--model: {folder}: cannot load it as a diffusers pipeline ({type(exc).__name__}: {exc})") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def denoiser_of(pipe: Any) -> nn.Module:
    """The training module of a Stable Diffusion 1.x / 2.x pipeline (a UNet on one CLIP text encoder),
    an SDXL pipeline (a UNet on two, with size / crop conditioning) or an SD3 pipeline
    (``FlowMatchLoss``: a diffusion transformer on two CLIP encoders and T5)."""
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel

    unet = getattr(pipe, "unet", None)
    kind = type(pipe).__name__
    if isinstance(getattr(pipe, "transformer", None), SD3Transformer2DModel):
        from .flow_match import FlowMatchLoss

        return FlowMatchLoss(pipe)
    if not isinstance(unet, UNet2DConditionModel):
        raise ConfigError(f"--model: {kind}: text-to-image training supports Stable Diffusion 1.x / 2.x, SDXL and SD3 "
                          "pipelines; Flux and other diffusion transformers are not yet trained here")
    second = getattr(pipe, "text_encoder_2", None)
    added = unet.config.get("addition_embed_type")
    if second is not None and added == "text_time" and getattr(pipe, "tokenizer_2", None) is not None:
        return DenoiserLoss(pipe.unet, pipe.text_encoder, pipe.vae, pipe.scheduler, text_encoder_2=second)
    if second is not None or added:
        raise ConfigError(f"--model: {kind}: its UNet needs conditioning ({added or 'a second text encoder'}) that only "
                          "the Stable Diffusion 1.x / 2.x and SDXL layouts are trained with here")
    return DenoiserLoss(pipe.unet, pipe.text_encoder, pipe.vae, pipe.scheduler)


def scoped_targets(targets: Any, prefix: str) -> str:
    """``target_modules`` names / suffixes (or a regex) limited to the submodule ``prefix``, as one regex."""
    if isinstance(targets, str):
        if targets == "all-linear":
            return rf"{prefix}\..*"
        return targets if targets.startswith(prefix) else rf"{prefix}\.(?:{targets})"
    names = "|".join(re.escape(t) for t in targets)
    return rf"{prefix}\.(?:.*\.)?(?:{names})"


def diffusion_tuner_args(tuner_args: dict[str, Any], train_text_encoder: bool, config_fields: set[str],
                         denoiser: str = "unet", targets: tuple[str, ...] = UNET_TARGETS) -> dict[str, Any]:
    """The tuner's fields for a denoiser: ``target_modules`` scoped to the UNet / transformer (and the
    CLIP text encoders with ``train_text_encoder``), so the VAE never gets an adapter."""
    args = dict(tuner_args)
    peft = args.get("peft_config")
    if isinstance(peft, dict) and isinstance(peft.get("target_modules"), (list, tuple, str)):  # the peft bridge
        args["peft_config"] = {**peft, "target_modules": scoped_targets(peft["target_modules"], denoiser)}
    if "target_modules" not in config_fields:
        return args
    parts = [scoped_targets(args.get("target_modules") or list(targets), denoiser)]
    if train_text_encoder:  # text_encoder and SDXL's text_encoder_2
        parts.append(scoped_targets(args.get("text_encoder_target_modules") or list(TEXT_ENCODER_TARGETS), "text_encoder(?:_2)?"))
    args.pop("text_encoder_target_modules", None)
    args["target_modules"] = parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)
    return args


def freeze_outside_denoiser(swift: nn.Module, train_text_encoder: bool, denoiser: str = "unet") -> int:
    """Freeze what a tuner selected outside the UNet (and the text encoder, with ``train_text_encoder``):
    the VAE only encodes, under no_grad. Returns how many parameters were frozen."""
    keep = (f"{denoiser}.", "text_encoder.", "text_encoder_2.") if train_text_encoder else (f"{denoiser}.",)
    frozen = 0
    for name, param in swift.model.named_parameters():
        if param.requires_grad and not name.startswith(keep):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen
