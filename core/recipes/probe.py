"""Running the real model once, on a few tokens, to decide whether a lean path of ``sft`` gives
the plain path's numbers (``padding_free``, ``head_loss``): a check, not a list of architectures."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

T = TypeVar("T")


def probe_tokens(count: int, vocab: int, stride: int = 7, offset: int = 3) -> list[int]:
    """``count`` fixed token ids below ``vocab``, different from one another for small counts."""
    return [(stride * i + offset) % vocab for i in range(count)]


def probe(model: nn.Module, run: Callable[[], T]) -> T | None:
    """``run()`` in eval mode without gradients, the model's training mode restored after; None
    when it raises (a model that cannot run the probe simply does not qualify)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return run()
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    finally:
        model.train(was_training)
