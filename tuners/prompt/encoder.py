"""``PromptEncoder``: one adapter's virtual-token embeddings, optionally reparameterised (P-Tuning).

Plain prompt tuning trains the ``(num_virtual_tokens, token_dim)`` rows directly. P-Tuning
(``encoder_type``) trains them through an MLP or a bidirectional LSTM + MLP head, which couples
the tokens and eases optimisation; ``fold`` replaces the encoder by the rows it produces, which is
what the adapter file stores (so PEFT reads it as prompt tuning) and all inference needs.
"""

from __future__ import annotations

import torch
from torch import nn


class PromptEncoder(nn.Module):
    def __init__(
        self,
        num_virtual_tokens: int,
        token_dim: int,
        encoder_type: str | None = None,
        hidden: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
        self.lstm: nn.LSTM | None = None
        self.head: nn.Sequential | None = None
        hidden = hidden or token_dim
        if encoder_type == "MLP":
            self.head = nn.Sequential(
                nn.Linear(token_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, token_dim),
            )  # fmt: skip
        elif encoder_type == "LSTM":
            self.lstm = nn.LSTM(
                token_dim, hidden, num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0,
                bidirectional=True, batch_first=True,
            )  # fmt: skip
            self.head = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, token_dim))
        elif encoder_type is not None:
            raise ValueError(f"encoder_type={encoder_type!r}: expected 'MLP', 'LSTM' or None")

    @property
    def folded(self) -> bool:
        return self.head is None

    def forward(self) -> torch.Tensor:
        """The virtual-token embeddings, shape ``(num_virtual_tokens, token_dim)``."""
        rows = self.embedding.weight
        if self.lstm is not None:
            rows = self.lstm(rows.unsqueeze(0))[0].squeeze(0)
        return rows if self.head is None else self.head(rows)

    @torch.no_grad()
    def rows(self) -> torch.Tensor:
        """What inference uses (dropout off), detached."""
        training = self.training
        self.eval()
        try:
            return self.forward().detach().clone()
        finally:
            self.train(training)

    @torch.no_grad()
    def fold(self) -> None:
        """Drop the prompt encoder, keeping the embeddings it produces now as plain trainable rows."""
        if self.head is None:
            return
        trainable = self.embedding.weight.requires_grad
        rows = self.rows()
        self.embedding = nn.Embedding(*rows.shape, device=rows.device, dtype=rows.dtype)
        self.embedding.weight.copy_(rows)
        self.embedding.weight.requires_grad_(trainable)
        self.lstm = self.head = None
