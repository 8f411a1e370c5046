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
from swiftune.tuners.prompt import common

from .cache import fill_cache, kv_shape, per_layer
from .config import PrefixConfig
from .encoder import PrefixEncoder

WEIGHTS_KEY = "prompt_embeddings"


class PrefixTuning(common.InputRewriter, Tuner):
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
        common.check_decoder_or_encoder(model, self.name)
        cfg = common.fill(self.config, {**kv_shape(model), "num_transformer_submodules": 1}, self.name)
        if cfg.token_dim % cfg.num_attention_heads:
            raise ValueError(f"token_dim={cfg.token_dim} is not a multiple of num_attention_heads={cfg.num_attention_heads}")
        cfg = common.fill(cfg, {"task_type": common.task_type(model)}, self.name)
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
        common.attach(model, self.adapter_name, encoder)
        self._install_hook(model)


    # -- the forward change --------------------------------------------------------------------------------

    def rewrite(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's keyword arguments with the prefix in the cache, mask and positions adjusted."""
        num = self.config.num_virtual_tokens
        tokens = common.token_inputs(kwargs, self.name)
        batch, length = tokens.shape[:2]
        key = common.cache_key(model, kwargs)
        cache = common.get_cache(kwargs)
        past = common.cache_length(cache)
        if past == 0:
            common.check_no_checkpointing(model, self.name)
            rows = common.encoder_of(model, self.adapter_name)().to(model.dtype)
            cache = fill_cache(model, cache, per_layer(rows, self.config.num_layers, self.config.num_attention_heads, batch))
            self._caches.add(cache)
            for name in common.CACHE_KEYS:
                kwargs.pop(name, None)
            kwargs[key] = cache
            excluded = common.caller_excludes_virtual(kwargs, num, num + length, default=True)
        else:
            excluded = common.caller_excludes_virtual(kwargs, num, past + length, default=cache in self._caches)
        if excluded:
            common.prepend(kwargs, "attention_mask", num, 1)
            common.shift_positions(kwargs, num, with_virtual=False)
        return kwargs

    # -- parameters and state ------------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        yield from common.named_parameters(model, self.adapter_name)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """PEFT's layout: the prefixes themselves, the projection MLP applied (folded)."""
        with torch.no_grad():
            return {WEIGHTS_KEY: common.encoder_of(model, self.adapter_name)().detach().clone()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        encoder: PrefixEncoder = common.encoder_of(model, self.adapter_name)
        common.fold_for_loading(encoder, self.name, self.adapter_name)
        load_checked({WEIGHTS_KEY: (encoder.embedding.weight, f"{common.CONTAINER}.{self.adapter_name}")}, state_dict, self.adapter_name)
