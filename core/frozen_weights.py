"""Frozen ``nn.Linear`` weights stored in the autocast dtype: the same numbers, no per-step cast.

Under ``torch.autocast`` every ``linear`` casts its fp32 weight to bf16 (or fp16) on every call:
autocast's cast cache keeps only casts of leaf tensors that require grad, so a frozen base model
is re-cast in full at every forward (6 bytes of memory traffic per parameter). Rounding the
frozen weights once gives the very values autocast would compute each time, so the outputs and
gradients do not change, the step saves the casts, and the frozen layers take half the memory.

Only exact ``nn.Linear`` modules whose parameters are all frozen and not shared with another
module (a tied ``lm_head`` stays, its embedding needs fp32) are converted. Call it for training
under autocast only: outside autocast a bf16 layer would meet fp32 inputs.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn


def cast_frozen_linears(model: nn.Module, dtype: torch.dtype) -> list[str]:
    """Convert the frozen, unshared ``nn.Linear`` layers of ``model`` to ``dtype``; returns their names."""
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    done = []
    for name, module in model.named_modules():
        if type(module) is not nn.Linear:
            continue
        params = list(module.parameters(recurse=False))
        if not params or any(p.requires_grad or uses[id(p)] > 1 or not p.is_floating_point() for p in params):
            continue
        if module.weight.dtype != dtype:
            module.to(dtype)
            done.append(name)
    return done
