"""Logits only where a label is trained: the causal-LM head and loss skip prompt positions.

In SFT most positions are masked out of the loss (system prompt, question, padding), yet a
causal LM computes the vocabulary-sized logits, their softmax and its backward for every
position. transformers models accept ``logits_to_keep`` as a tensor of positions and their
``ForCausalLMLoss`` accepts ``shift_labels``; passing the positions whose next token is labelled
(in any row of the batch) and the matching labels gives the same loss and gradients with less
work: the LM head's GEMMs and the fp32 softmax over the vocabulary shrink to those positions.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..data import IGNORE_INDEX


def supports_answer_logits(model: nn.Module) -> bool:
    """The model takes ``logits_to_keep`` and computes its loss with transformers' ``ForCausalLMLoss``."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        takes_positions = "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False
    return takes_positions and getattr(base, "loss_function", None) is ForCausalLMLoss


def next_token_labels(labels: torch.Tensor) -> torch.Tensor:
    """The label each position predicts (the next token's), ignored at the last position: the
    shift ``ForCausalLMLoss`` makes."""
    return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def keep_answer_positions(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` plus ``logits_to_keep`` and ``shift_labels`` for the labelled positions.

    Unchanged when every position that can have a next token is labelled (nothing to save) or
    none is (the plain path returns the loss of an empty selection the model's own way).
    """
    labels = inputs.get("labels")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 2 or "logits_to_keep" in inputs:
        return inputs
    shifted = next_token_labels(labels)
    keep = (shifted != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    if keep.numel() == 0 or keep.numel() >= labels.shape[1] - 1:
        return inputs
    return {**inputs, "logits_to_keep": keep, "shift_labels": shifted[:, keep].contiguous()}
