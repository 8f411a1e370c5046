"""The side networks: a per-position MLP, or a tiny pre-norm transformer block.

Both end in a zero-initialised projection back to the hidden width, so a fresh side network
outputs exactly zero. The transformer block attends across positions, so during cached generation
(where the backbone sees only the new tokens) it keeps its own keys and values per transformers
``Cache`` object: the same sequence gives the same outputs with or without the cache.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "tanh": torch.tanh}


class SideMLP(nn.Module):
    """``out(act(inp(norm(x))))``: per position, ``width`` hidden units."""

    def __init__(self, hidden: int, width: int, act: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.inp = nn.Linear(hidden, width)
        self.out = nn.Linear(width, hidden)
        self.act = act
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, context: "SideContext | None" = None) -> torch.Tensor:
        return self.out(ACTIVATIONS[self.act](self.inp(self.norm(x))))


class SideContext:
    """What the side transformer needs from the block call: its cache and attention mask."""

    def __init__(self, cache: Any = None, mask: torch.Tensor | None = None, layer_idx: int | None = None) -> None:
        self.cache = cache
        self.mask = mask
        #: Tokens the backbone's cache held for this block before the call (None: cannot tell).
        #: Built before the block runs, since the block appends the new tokens to its cache.
        self.cached_length: int | None = None
        if cache is not None and layer_idx is not None:
            try:
                self.cached_length = int(cache.get_seq_length(layer_idx))
            except (TypeError, ValueError, IndexError):
                pass


class SideTransformer(nn.Module):
    """A tiny transformer block of width ``width`` between a projection in and a zero projection out."""

    def __init__(self, hidden: int, width: int, heads: int, act: str, causal: bool) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.act = act
        self.norm_in = nn.LayerNorm(hidden)
        self.inp = nn.Linear(hidden, width)
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.attn_out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        self.out = nn.Linear(width, hidden)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Keys / values of earlier positions, per backbone cache object (dropped with the cache).
        self._kv: weakref.WeakKeyDictionary[Any, tuple[torch.Tensor, torch.Tensor]] = weakref.WeakKeyDictionary()

    def forward(self, x: torch.Tensor, context: SideContext | None = None) -> torch.Tensor:
        h = self.inp(self.norm_in(x))
        h = h + self._attend(self.norm1(h), context or SideContext())
        h = h + self.fc2(ACTIVATIONS[self.act](self.fc1(self.norm2(h))))
        return self.out(h)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, w = t.shape
        return t.view(b, n, self.heads, w // self.heads).transpose(1, 2)

    def _past(self, context: SideContext, batch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The stored keys / values this call continues, trimmed to the backbone cache's length."""
        if context.cache is None:
            return None
        past = self._kv.get(context.cache)
        expected = context.cached_length
        stored = 0 if past is None else past[0].shape[2]
        if expected is None:
            expected = stored
        if expected > stored:
            raise RuntimeError(
                f"side network: the model's cache holds {expected} tokens but the side transformer saw only "
                f"{stored}; start generation with the side adapter already active"
            )
        if past is None or expected == 0:
            return None
        if past[0].shape[0] != batch:
            raise RuntimeError("side network: the cache's batch changed (beam search is not supported)")
        return past[0][:, :, :expected], past[1][:, :, :expected]

    def _attend(self, h: torch.Tensor, context: SideContext) -> torch.Tensor:
        b, n, w = h.shape
        q, k, v = (self._split(t) for t in self.qkv(h).chunk(3, dim=-1))
        past = self._past(context, b)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        if context.cache is not None:
            self._kv[context.cache] = (k, v)
        mask = self._mask(context.mask, n, k.shape[2], h.device)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.attn_out(out.transpose(1, 2).reshape(b, n, w))

    def _mask(self, given: torch.Tensor | None, n: int, total: int, device: torch.device) -> torch.Tensor | None:
        """The block's own 4D mask when it fits, else causal (or none); every query sees itself."""
        past = total - n
        rows = torch.arange(n, device=device)[:, None] + past
        cols = torch.arange(total, device=device)[None, :]
        own = cols <= rows if self.causal else torch.ones(n, total, dtype=torch.bool, device=device)
        diag = cols == rows  # keeps fully padded rows from turning into NaN
        if given is not None and given.dim() == 4 and given.shape[-2] == n and given.shape[-1] >= total:
            given = given[..., :total]
            return given | diag if given.dtype == torch.bool else given.masked_fill(diag, 0.0)
        if given is not None and given.dim() == 2 and given.shape[-1] >= total:
            keep = given[:, None, None, :total].bool() & own
            return keep | diag
        if not self.causal or n == 1:
            return None
        return own
