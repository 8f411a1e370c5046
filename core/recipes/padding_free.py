"""Whether a model can train on padding-free batches (``swiftune.data.FlatCollator``).

A flat row holds several examples whose ``position_ids`` restart at 0; transformers models that
build their attention masks with ``masking_utils`` keep those examples apart (block-diagonal
causal mask) when no ``attention_mask`` and no KV cache is passed. Models with their own mask code
(ALiBi, remote code) would let the examples attend to each other, and prompt-learning tuners add
virtual tokens per row. Rather than keep a list of architectures, the check runs the real model
once on two tiny examples, padded and flat, and compares the logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .probe import probe, probe_tokens


def honours_restarts(model: nn.Module) -> bool:
    """True when a flat row with restarting ``position_ids`` gives the padded batch's logits."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is None or not hasattr(embeddings, "num_embeddings"):
        return False
    device = embeddings.weight.device
    vocab = embeddings.num_embeddings
    first, second = probe_tokens(5, vocab), probe_tokens(3, vocab, stride=11, offset=5)
    padded = torch.tensor([first, second + [second[-1]] * 2], device=device)
    mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2], device=device)
    flat = torch.tensor([first + second], device=device)
    positions = torch.tensor([list(range(5)) + list(range(3))], device=device)
    both = probe(model, lambda: (_logits(model, input_ids=padded, attention_mask=mask),
                                 _logits(model, input_ids=flat, position_ids=positions)))
    if both is None or both[0] is None or both[1] is None:
        return False
    by_row, in_one = both
    expected = torch.cat([by_row[0, :5], by_row[1, :3]]).float()
    got = in_one[0].float()
    scale = max(1.0, expected.abs().max().item())
    tolerance = 1e-3 if by_row.dtype == torch.float32 else 3e-2
    return got.shape == expected.shape and bool(((got - expected).abs().max() <= tolerance * scale).item())


def _logits(model: nn.Module, **inputs: Any) -> torch.Tensor | None:
    out = model(**inputs, use_cache=False)
    logits = getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) and logits.dim() == 3 else None
