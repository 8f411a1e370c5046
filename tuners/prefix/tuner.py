"""The ``prefix`` tuner: trained keys / values in front of every layer, through the KV cache.

A forward pre-hook on the base model puts the prefixes into the cache whenever a call starts
with an empty one (every training forward, the prefill step of ``generate``), adds their columns
to the attention mask and moves the caller's positions past them. Later decoding steps find them
in the cache already. Keys and file format are PEFT's prefix tuning (``prompt_embeddings``).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn

from swiftune.serialization import load_checked
from swiftune.tuner import Tuner
from swiftune.tuners import _prompt_learning as prompt_learning

from .cache import fill_cache, kv_shape, per_layer
from .config import PrefixConfig
from .encoder import PrefixEncoder

WEIGHTS_KEY = "prompt_embeddings"


class PrefixTuning(prompt_learning.InputRewriter, Tuner):
    name = "prefix"
    calls_frozen_linears_only = True
    description = "trained per-layer key/value prefixes through the model's KV cache"
    config_class = PrefixConfig
    mergeable = False
    identity_at_init = False
    prompt_learning = True
    needs_transformers_model = True
    peft_compatible = True
    #: The conformance suite's memorise check trains at this rate: prompt learning needs ~0.1-0.3.
    typical_learning_rate = 0.1  # a few virtual tokens learn slowly at LoRA's rates

    config: PrefixConfig

    def __init__(self, adapter_name: str, config: PrefixConfig) -> None:
        super().__init__(adapter_name, config)
        self._init_rewriter()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        prompt_learning.check_decoder_or_encoder(model, self.name)
        cfg = prompt_learning.fill(self.config, {**kv_shape(model), "num_transformer_submodules": 1}, self.name)
        if cfg.token_dim % cfg.num_attention_heads:
            raise ValueError(f"token_dim={cfg.token_dim} is not a multiple of num_attention_heads={cfg.num_attention_heads}")
        cfg = prompt_learning.fill(cfg, {"task_type": prompt_learning.task_type(model)}, self.name)
        if cfg.encoder_hidden_size is None:  # a default, not a shape the model dictates
            cfg = cfg.model_copy(update={"encoder_hidden_size": cfg.token_dim})
        self.config = cfg
        # A projection only shapes training: loaded files hold the prefixes it produced (PEFT's inference mode).
        hidden = self.config.encoder_hidden_size if self.config.prefix_projection and not self.loading else None
        device = model.get_input_embeddings().weight.device
        encoder = PrefixEncoder(
            self.config.num_virtual_tokens,
            self.config.token_dim,
            self.config.num_layers,
            projection_hidden=hidden,
            zero_init=self.config.init_weights == "zero",
        ).to(device)
        prompt_learning.attach(model, self.adapter_name, encoder)
        self._install_hook(model)


    # -- the forward change --------------------------------------------------------------------------------

    def rewrite(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's keyword arguments with the prefix in the cache, mask and positions adjusted."""
        num = self.config.num_virtual_tokens
        tokens = prompt_learning.token_inputs(kwargs, self.name)
        batch, length = tokens.shape[:2]
        key = prompt_learning.cache_key(model, kwargs)
        cache = prompt_learning.get_cache(kwargs)
        past = prompt_learning.cache_length(cache)
        if past == 0:
            prompt_learning.check_no_checkpointing(model, self.name)
            rows = prompt_learning.encoder_of(model, self.adapter_name)().to(model.dtype)
            cache = fill_cache(model, cache, per_layer(rows, self.config.num_layers, self.config.num_attention_heads, batch))
            self._caches.add(cache)
            for name in prompt_learning.CACHE_KEYS:
                kwargs.pop(name, None)
            kwargs[key] = cache
            excluded = prompt_learning.caller_excludes_virtual(kwargs, num, num + length, default=True)
        else:
            excluded = prompt_learning.caller_excludes_virtual(kwargs, num, past + length, default=cache in self._caches)
        if excluded:
            prompt_learning.prepend(kwargs, "attention_mask", num, 1)
            prompt_learning.shift_positions(kwargs, num, with_virtual=False)
        return kwargs

    # -- parameters and state ------------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        yield from prompt_learning.named_parameters(model, self.adapter_name)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """PEFT's layout: the prefixes themselves, the projection MLP applied (folded)."""
        with torch.no_grad():
            return {WEIGHTS_KEY: prompt_learning.encoder_of(model, self.adapter_name)().detach().clone()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        encoder: PrefixEncoder = prompt_learning.encoder_of(model, self.adapter_name)
        prompt_learning.fold_for_loading(encoder, self.name, self.adapter_name)
        load_checked({WEIGHTS_KEY: (encoder.embedding.weight, f"{prompt_learning.CONTAINER}.{self.adapter_name}")}, state_dict, self.adapter_name)
