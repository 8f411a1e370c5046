"""The ``prompt`` tuner: trained virtual-token embeddings in front of the input embeddings.

A forward pre-hook on the base model replaces ``input_ids`` by ``inputs_embeds`` with the virtual
tokens first whenever a call starts a sequence (no cache yet: every training forward, the prefill
step of ``generate``), and extends the attention mask, labels (-100) and positions to match, as
PEFT does; its logits therefore cover the virtual positions too. Later decoding steps find the
virtual tokens in the cache. Keys and file format are PEFT's prompt tuning (``prompt_embeddings``).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch import nn

from swiftune.serialization import load_checked
from swiftune.tuner import Tuner
from swiftune.tuners import _prompt_learning as prompt_learning

from .config import PromptConfig
from .encoder import PromptEncoder

WEIGHTS_KEY = "prompt_embeddings"


class PromptTuning(prompt_learning.InputRewriter, Tuner):
    name = "prompt"
    calls_frozen_linears_only = True
    description = "trained virtual-token embeddings prepended to the input embeddings (P-Tuning via encoder_type)"
    config_class = PromptConfig
    mergeable = False
    identity_at_init = False
    prompt_learning = True
    needs_transformers_model = True
    peft_compatible = True
    #: The conformance suite's memorise check trains at this rate: prompt learning needs ~0.1-0.3.
    typical_learning_rate = 0.3  # a few virtual tokens learn slowly at LoRA's rates

    config: PromptConfig

    def __init__(self, adapter_name: str, config: PromptConfig) -> None:
        super().__init__(adapter_name, config)
        self._init_rewriter()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        prompt_learning.check_decoder_or_encoder(model, self.name)
        embeddings = model.get_input_embeddings()
        cfg = prompt_learning.text_config(model)
        self.config = prompt_learning.fill(
            self.config,
            {
                "token_dim": embeddings.weight.shape[1],
                "num_attention_heads": prompt_learning.config_value(cfg, "num_attention_heads", "n_head", "num_heads"),
                "num_layers": prompt_learning.config_value(cfg, "num_hidden_layers", "num_layers", "n_layer"),
                "num_transformer_submodules": 1,
                "task_type": prompt_learning.task_type(model),
            },
            self.name,
        )
        c = self.config
        # An encoder only shapes training: loaded files hold the embeddings it produced.
        encoder = PromptEncoder(
            c.num_virtual_tokens,
            c.token_dim,
            None if self.loading else c.encoder_type,
            c.encoder_hidden_size,
            c.encoder_num_layers,
            c.encoder_dropout,
        ).to(embeddings.weight.device)
        if not self.loading and c.prompt_tuning_init != "RANDOM":
            with torch.no_grad():
                encoder.embedding.weight.copy_(self._initial_rows(model, embeddings))
        encoder.train(model.training)
        prompt_learning.attach(model, self.adapter_name, encoder)
        self._install_hook(model)

    def _initial_rows(self, model: nn.Module, embeddings: nn.Module) -> torch.Tensor:
        """Embeddings of vocabulary tokens: the init text's (repeated or cut) or random ones."""
        num = self.config.num_virtual_tokens
        if self.config.prompt_tuning_init == "SAMPLE_VOCAB":
            ids = torch.randint(0, embeddings.weight.shape[0], (num,))
        else:
            ids = torch.tensor(self._text_ids(model))
            ids = ids.repeat(math.ceil(num / len(ids)))[:num]
        with torch.no_grad():
            return embeddings(ids.to(embeddings.weight.device)).float()

    def _text_ids(self, model: nn.Module) -> list[int]:
        from transformers import AutoTokenizer

        source = self.config.tokenizer_name_or_path or getattr(model.config, "_name_or_path", None)
        if not source:
            raise ValueError("prompt_tuning_init='TEXT' needs tokenizer_name_or_path (the model has no name_or_path)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **(self.config.tokenizer_kwargs or {}))
        except (OSError, ValueError) as exc:
            raise ValueError(f"tokenizer_name_or_path={source!r}: cannot load a tokenizer: {exc}") from exc
        ids = list(tokenizer(self.config.prompt_tuning_init_text)["input_ids"])
        if not ids:
            raise ValueError("prompt_tuning_init_text gives no tokens")
        return ids


    # -- the forward change --------------------------------------------------------------------------------

    def rewrite(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's keyword arguments with the virtual tokens in front (when it starts a sequence)."""
        return prompt_learning.prepend_virtual_tokens(model, kwargs, self.adapter_name, self.config.num_virtual_tokens,
                                             self.name, self._caches)

    # -- parameters and state ------------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        yield from prompt_learning.named_parameters(model, self.adapter_name)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """PEFT's layout: the virtual-token embeddings, any prompt encoder applied (folded)."""
        encoder: PromptEncoder = prompt_learning.encoder_of(model, self.adapter_name)
        return {WEIGHTS_KEY: encoder.rows()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        encoder: PromptEncoder = prompt_learning.encoder_of(model, self.adapter_name)
        prompt_learning.fold_for_loading(encoder, self.name, self.adapter_name)
        load_checked({WEIGHTS_KEY: (encoder.embedding.weight, f"{prompt_learning.CONTAINER}.{self.adapter_name}")}, state_dict, self.adapter_name)
