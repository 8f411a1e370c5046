"""The bridge for PEFT's input-embedding prompt methods: P-Tuning and prompt tuning.

PEFT applies these inside ``PeftModel.forward``, not by injecting layers, so the bridge builds
PEFT's own encoder module (``peft.tuners.p_tuning.PromptEncoder`` / ``PromptEmbedding``) from the
config, keeps it on the base model, and a forward pre-hook puts its virtual-token embeddings in
front of the input embeddings the way ``PeftModelForCausalLM`` does: attention mask extended with
ones, labels with -100, so the logits cover the virtual positions too. Later ``generate`` steps
find the virtual tokens in the KV cache. The file is PEFT's: ``prompt_embeddings`` holds what the
encoder produces, and a loaded adapter uses those rows directly (PEFT's ``inference_mode``).
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

import torch
from torch import nn

from swiftune.serialization import load_checked
from swiftune.tuners import _prompt_learning as prompt_learning

from .config import PeftBridgeConfig, canonical
from .tuner import PeftBridge

WEIGHTS_KEY = "prompt_embeddings"


class PeftPrompt(nn.Module):
    """PEFT's prompt encoder, called the way ``PeftModel.get_prompt`` calls it; returns (tokens, dim)."""

    def __init__(self, encoder: nn.Module, num_virtual_tokens: int, folded: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_virtual_tokens = num_virtual_tokens
        #: PEFT's inference_mode: the embedding rows are the prompts (no reparameterisation head).
        self.folded = folded

    def forward(self) -> torch.Tensor:
        weight = self.encoder.embedding.weight
        if self.folded:
            return weight
        indices = torch.arange(self.num_virtual_tokens, device=weight.device).unsqueeze(0)
        return self.encoder(indices)[0]

    @torch.no_grad()
    def rows(self) -> torch.Tensor:
        return self.forward().detach().clone()


class PeftPromptBridge(prompt_learning.InputRewriter, PeftBridge):
    """``PeftBridge`` for a P_TUNING / PROMPT_TUNING config (``PeftBridge(...)`` returns one)."""

    mergeable = False
    identity_at_init = False
    prompt_learning = True
    needs_transformers_model = True

    def __init__(self, adapter_name: str, config: PeftBridgeConfig) -> None:
        super().__init__(adapter_name, config)
        self._init_rewriter()

    @property
    def num_virtual_tokens(self) -> int:
        return int(self.config.peft_config["num_virtual_tokens"])

    # -- lifecycle -------------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
        from peft.utils.other import _prepare_prompt_learning_config

        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise ValueError(f"{self.config.method} on encoder-decoder models is not supported by the bridge; use peft.get_peft_model")
        embeddings = model.get_input_embeddings()
        if embeddings is None:
            raise ValueError(f"{self.config.method} needs a model with input embeddings")
        peft_cfg = self.config.build()
        if peft_cfg.task_type is None:
            peft_cfg.task_type = prompt_learning.task_type(model)
        # PEFT's own filling of token_dim, num_layers, heads, encoder width from the model config.
        peft_cfg = _prepare_prompt_learning_config(peft_cfg, model.config)
        peft_cfg.num_transformer_submodules = peft_cfg.num_transformer_submodules or 1
        if peft_cfg.token_dim != embeddings.weight.shape[1]:
            raise ValueError(f"token_dim={peft_cfg.token_dim} does not fit the input embeddings' width {embeddings.weight.shape[1]}")
        # What is saved describes the model it was filled from (as PEFT's adapter_config.json does).
        self.config = PeftBridgeConfig(peft_config=canonical(peft_cfg.to_dict()))
        build_cfg = copy.deepcopy(peft_cfg)
        build_cfg.inference_mode = self.loading  # loaded files hold the encoder's output rows
        encoder_cls = PEFT_TYPE_TO_TUNER_MAPPING[self.config.method]
        if self.config.method == "P_TUNING":
            encoder = encoder_cls(build_cfg)
        else:
            encoder = encoder_cls(build_cfg, embeddings)
        module = PeftPrompt(encoder, peft_cfg.num_virtual_tokens, folded=self.loading).to(embeddings.weight.device)
        module.train(model.training)
        prompt_learning.attach(model, self.adapter_name, module)
        self._install_hook(model)

    # -- the forward change --------------------------------------------------------------------------

    def rewrite(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's keyword arguments with the virtual tokens in front (when it starts a sequence)."""
        return prompt_learning.prepend_virtual_tokens(model, kwargs, self.adapter_name, self.num_virtual_tokens, self.name,
                                             self._caches)

    # -- parameters and state --------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        yield from prompt_learning.named_parameters(model, self.adapter_name)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """PEFT's ``get_peft_model_state_dict`` for prompt learning: the encoder's output rows."""
        module: PeftPrompt = prompt_learning.encoder_of(model, self.adapter_name)
        was_training = module.training
        module.eval()
        try:
            return {WEIGHTS_KEY: module.rows()}
        finally:
            module.train(was_training)

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        module: PeftPrompt = prompt_learning.encoder_of(model, self.adapter_name)
        if not module.folded:
            raise RuntimeError(f"adapter '{self.adapter_name}': load a P-Tuning file into a freshly loaded adapter")
        load_checked({WEIGHTS_KEY: (module.encoder.embedding.weight, f"{prompt_learning.CONTAINER}.{self.adapter_name}")},
                     state_dict, self.adapter_name)  # fmt: skip
