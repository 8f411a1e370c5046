"""Attention for padding-free rows that computes each example's own causal block, not the whole row.

A padding-free row holds several examples whose ``position_ids`` restart at 0. With SDPA,
transformers keeps them apart with a dense block-diagonal mask over the whole row: a row of
8 examples of ~1,000 tokens costs the attention of one 8,000-token sequence (8x the work), and a
dense mask rules out the flash kernel. Here the row's examples are gathered into a right-padded
batch (one example per row) and run through ``scaled_dot_product_attention`` with
``is_causal=True``: causality alone keeps every real query away from the padding at the end of
its row, so the outputs at real positions are exact, and the flash kernel applies.

The function is registered with transformers' ``AttentionInterface`` under ``PACKED_SDPA`` (its
documented way to add an attention implementation; masks are built as for ``sdpa``). Anything
that is not one flat row with restarting positions (batches with padding masks, the KV-cache
path of generation) goes to transformers' own SDPA function unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PACKED_SDPA = "swiftune_packed_sdpa"

#: The last row seen: [position_ids tensor, its layout (gather index, valid mask, segments, longest) or None].
#: Every layer of one forward (and a checkpointed recomputation) passes the same tensor; holding it
#: keeps its memory from being reused by a later row, so an identity check is enough.
_last: list[Any] = []


def _layout(position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int] | None:
    if _last and _last[0] is position_ids:
        return _last[1]
    pos = position_ids[0]
    starts = torch.nonzero(pos == 0).flatten()
    layout = None
    if starts.numel() > 1 and int(starts[0]) == 0:
        total = pos.numel()
        lengths = torch.diff(starts, append=torch.tensor([total], device=starts.device))
        longest = int(lengths.max())
        j = torch.arange(longest, device=pos.device)
        gather = (starts[:, None] + torch.minimum(j[None, :], lengths[:, None] - 1)).flatten()
        valid = (j[None, :] < lengths[:, None]).flatten()
        layout = (gather, valid, starts.numel(), longest)
    _last[:] = [position_ids, layout]
    return layout


def packed_sdpa_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                          **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: ``query`` (1, heads, tokens, dim); returns
    (1, tokens, heads, dim)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    layout = None
    if (position_ids is not None and query.shape[0] == 1 and position_ids.dim() == 2 and position_ids.shape[0] == 1
            and query.shape[2] == key.shape[2] == position_ids.shape[1] > 1):
        layout = _layout(position_ids)
    if layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gather, valid, segments, longest = layout
    heads, dim = query.shape[1], query.shape[3]

    def rows(t: torch.Tensor) -> torch.Tensor:  # (1, h, T, d) -> (segments, h, longest, d)
        return t[0].index_select(1, gather).view(t.shape[1], segments, longest, t.shape[3]).transpose(0, 1)

    q, k, v = rows(query), rows(key), rows(value)
    if k.shape[1] != heads:  # grouped-query attention: each key / value head serves consecutive query heads
        k = k.repeat_interleave(heads // k.shape[1], dim=1)
        v = v.repeat_interleave(heads // v.shape[1], dim=1)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if module.training else 0.0, is_causal=True,
                                         scale=scaling)
    out = out.transpose(1, 2).reshape(segments * longest, heads, dim)[valid]
    return out.unsqueeze(0), None


def use_packed_attention(model: nn.Module) -> bool:
    """Switch a transformers model that runs SDPA to ``PACKED_SDPA``; False (nothing changed) where
    it does not run SDPA or transformers cannot register the function."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    try:
        from transformers import AttentionInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: F401
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
        AttentionMaskInterface.register(PACKED_SDPA, sdpa_mask)
    except ImportError:
        return False
    set_attention(model, PACKED_SDPA)
    return True


def set_attention(model: nn.Module, name: str) -> None:
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        setter(name)
    else:  # pragma: no cover - older transformers
        model.config._attn_implementation = name
