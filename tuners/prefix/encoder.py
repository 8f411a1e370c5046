"""``PrefixEncoder``: the trained prefixes of one adapter, optionally behind a reparameterising MLP.

The output is PEFT's flat layout, one row per virtual token: ``num_layers * 2 * token_dim``
numbers, layer by layer, key before value, heads before head dimensions. With the MLP
(``prefix_projection``) the rows are ``transform(embedding)``; ``fold`` replaces the MLP by the
rows it produces, which is what the adapter file stores and what inference needs.
"""

from __future__ import annotations

import torch
from torch import nn


class PrefixEncoder(nn.Module):
    def __init__(
        self,
        num_virtual_tokens: int,
        token_dim: int,
        num_layers: int,
        projection_hidden: int | None = None,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        width = num_layers * 2 * token_dim
        self.transform: nn.Sequential | None = None
        if projection_hidden:
            self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
            self.transform = nn.Sequential(
                nn.Linear(token_dim, projection_hidden), nn.Tanh(), nn.Linear(projection_hidden, width)
            )
            if zero_init:
                nn.init.zeros_(self.transform[-1].weight)
                nn.init.zeros_(self.transform[-1].bias)
        else:
            self.embedding = nn.Embedding(num_virtual_tokens, width)
            if zero_init:
                nn.init.zeros_(self.embedding.weight)

    @property
    def folded(self) -> bool:
        return self.transform is None

    def forward(self) -> torch.Tensor:
        """The prefixes, shape ``(num_virtual_tokens, num_layers * 2 * token_dim)``."""
        rows = self.embedding.weight
        return rows if self.transform is None else self.transform(rows)

    @torch.no_grad()
    def fold(self) -> None:
        """Drop the MLP, keeping the prefixes it produces now as plain trainable rows."""
        if self.transform is None:
            return
        trainable = self.embedding.weight.requires_grad
        rows = self.forward().detach().clone()
        self.embedding = nn.Embedding(*rows.shape, device=rows.device, dtype=rows.dtype)
        self.embedding.weight.copy_(rows)
        self.embedding.weight.requires_grad_(trainable)
        self.transform = None
