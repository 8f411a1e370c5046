"""``FlowMatchLoss``: the training module of a Stable Diffusion 3 pipeline (a diffusion transformer
trained by flow matching), the counterpart of ``DenoiserLoss`` for UNet pipelines.

Its submodules are named as in the pipeline (``transformer``, ``text_encoder``, ``text_encoder_2``,
``text_encoder_3``, ``vae``), so adapter keys read ``transformer.<module>``: diffusers' LoRA prefix.
The prompt is encoded as ``StableDiffusion3Pipeline.encode_prompt`` does it; the loss is rectified
flow matching: the transformer predicts ``noise - latents`` at ``(1 - sigma) * latents + sigma * noise``,
with sigma drawn logit-normal (diffusers' SD3 training default) from the scheduler's schedule.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: diffusers' SD3 LoRA targets: the joint attention's image and text projections.
TRANSFORMER_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
#: T5 tokens the prompt is padded to (the pipeline's ``max_sequence_length`` default).
MAX_SEQUENCE_LENGTH = 256


class FlowMatchLoss(nn.Module):
    """``forward(pixel_values, input_ids, input_ids_2, input_ids_3)`` -> ``{"loss": ...}`` for SD3."""

    denoiser_name = "transformer"
    default_targets = TRANSFORMER_TARGETS
    is_sdxl = False
    prediction_type = "flow matching"

    def __init__(self, pipe: Any) -> None:
        super().__init__()
        self.transformer = pipe.transformer
        self.text_encoder, self.text_encoder_2 = pipe.text_encoder, pipe.text_encoder_2
        if pipe.text_encoder_3 is not None:
            self.text_encoder_3 = pipe.text_encoder_3
        self.vae = pipe.vae
        # A copy: inference's set_timesteps must not change the training schedule.
        self.noise_scheduler = copy.deepcopy(pipe.scheduler)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **_: Any) -> None:
        """``--gradient-checkpointing``: the transformer's blocks recompute their activations in backward."""
        self.transformer.enable_gradient_checkpointing()

    @property
    def is_activation_checkpointing(self) -> bool:
        return bool(getattr(self.transformer, "is_gradient_checkpointing", False))

    @staticmethod
    def _grad(encoder: nn.Module) -> Any:
        return torch.set_grad_enabled(any(p.requires_grad for p in encoder.parameters()) and torch.is_grad_enabled())

    def condition(self, input_ids: torch.Tensor, input_ids_2: torch.Tensor,
                  input_ids_3: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``encoder_hidden_states`` and ``pooled_projections`` as the SD3 pipeline builds them."""
        hidden, pooled = [], []
        for encoder, ids in ((self.text_encoder, input_ids), (self.text_encoder_2, input_ids_2)):
            with self._grad(encoder):
                out = encoder(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled.append(out[0])
        clip = torch.cat(hidden, dim=-1)
        if hasattr(self, "text_encoder_3") and input_ids_3 is not None:
            with self._grad(self.text_encoder_3):
                t5 = self.text_encoder_3(input_ids_3)[0]
        else:
            t5 = clip.new_zeros(clip.shape[0], MAX_SEQUENCE_LENGTH, self.transformer.config.joint_attention_dim)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {"encoder_hidden_states": torch.cat([clip, t5], dim=-2), "pooled_projections": torch.cat(pooled, dim=-1)}

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, input_ids_2: torch.Tensor,
                input_ids_3: torch.Tensor | None = None, **_: Any) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            latents = self.vae.encode(pixel_values.to(self.vae.dtype)).latent_dist.sample()
            latents = (latents - (self.vae.config.shift_factor or 0.0)) * self.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        u = torch.sigmoid(torch.randn(latents.shape[0], device=latents.device))  # logit-normal, mean 0, std 1
        steps = self.noise_scheduler.config.num_train_timesteps
        indices = (u * steps).long().clamp(max=steps - 1).cpu()
        timesteps = self.noise_scheduler.timesteps[indices].to(latents.device)
        sigmas = self.noise_scheduler.sigmas[indices].to(latents.device, latents.dtype).view(-1, 1, 1, 1)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        prediction = self.transformer(hidden_states=noisy, timestep=timesteps, return_dict=False,
                                      **self.condition(input_ids, input_ids_2, input_ids_3))[0]
        return {"loss": F.mse_loss(prediction.float(), (noise - latents).float())}
