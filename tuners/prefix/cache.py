"""Prefixes into a transformers ``Cache``: PEFT's flat rows -> per-layer (key, value) tensors.

The model then attends over the prefix exactly as over earlier tokens of its own, so nothing in
the model is patched: positions continue after the prefix and the mask gains its columns.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from swiftune.tuners._prompt_learning import config_value, text_config


def kv_shape(model: nn.Module) -> dict[str, int]:
    """PEFT's shape fields for ``model``: kv heads (GQA), their total width, the layer count."""
    cfg = text_config(model)
    layers = config_value(cfg, "num_hidden_layers", "num_layers", "n_layer")
    hidden = config_value(cfg, "hidden_size", "n_embd", "d_model")
    heads = config_value(cfg, "num_attention_heads", "n_head", "num_heads")
    if layers is None or hidden is None or heads is None:
        raise ValueError(
            f"cannot read the layer count / hidden size / attention heads from {type(cfg).__name__}; "
            "set num_layers, token_dim and num_attention_heads"
        )
    kv_heads = getattr(cfg, "num_key_value_heads", None)
    if kv_heads is None:
        return {"num_layers": layers, "token_dim": hidden, "num_attention_heads": heads}
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    return {"num_layers": layers, "token_dim": head_dim * kv_heads, "num_attention_heads": kv_heads}


def shared_kv_layers(model: nn.Module, num_layers: int) -> set[int]:
    """Layers that reuse an earlier layer's keys / values (they never write the cache)."""
    shared = getattr(text_config(model), "num_kv_shared_layers", 0) or 0
    return set(range(num_layers - shared, num_layers))


def per_layer(rows: torch.Tensor, num_layers: int, heads: int, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(P, num_layers * 2 * token_dim)`` -> ``[(key, value)]``, each ``(batch, heads, P, head_dim)``."""
    tokens = rows.shape[0]
    kv = rows.view(tokens, num_layers * 2, heads, -1).permute(1, 2, 0, 3)
    return [
        (kv[2 * i].unsqueeze(0).expand(batch, -1, -1, -1), kv[2 * i + 1].unsqueeze(0).expand(batch, -1, -1, -1))
        for i in range(num_layers)
    ]


def fill_cache(model: nn.Module, cache: Any, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """Write the prefix into ``cache`` (a new ``DynamicCache`` when None), layer by layer."""
    if cache is None:
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
    skip = shared_kv_layers(model, len(pairs))
    for layer_idx, (key, value) in enumerate(pairs):
        if layer_idx not in skip:
            cache.update(key, value, layer_idx)
    return cache
