"""The dtype of an adapter's own parameters: fp32 on a half-precision base unless asked otherwise.

Why: an optimizer step adds ``lr * update`` to each trained weight. In bf16 (8 bits of mantissa)
an update smaller than about 1/256 of the weight rounds away, so a LoRA matrix stored in bf16
stops learning at the learning rates large models are trained with. PEFT therefore keeps adapter
weights in fp32 on bf16 / fp16 bases (``autocast_adapter_dtype=True``); so does swiftune. The
tuners' forwards compute in the base's dtype (they cast the adapter's weights or their own output
to it), so activations stay half precision and only the small adapter tensors are fp32.

What counts as "the adapter's own parameters": the trainable tensors a tuner *adds* to the model
(LoRA / adapter / side / Res-Tuning matrices, prompt and prefix encoders, the per-adapter deltas
of ``part`` and ``bitfit``). Parameters the base model already had are never converted: ``full``
fine-tuning (set the dtype with the model's own loading dtype), base biases that LoRA's ``bias``
option trains, and ``modules_to_save`` copies (copies of base modules, kept in the base dtype as
PEFT keeps them) stay as they are.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Literal

import torch
from torch import nn

AdapterDtype = Literal["auto", "float32", "bfloat16", "float16"]
ADAPTER_DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
HALF_DTYPES = (torch.bfloat16, torch.float16)


def base_float_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype that holds most of ``model``'s parameter elements (None: no float parameter).

    Quantized bases (bitsandbytes packs weights into integer tensors) are judged by their float
    parameters: embeddings, norms and the head, which are in the dtype the model was loaded in.
    """
    counts: Counter[torch.dtype] = Counter()
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] += p.numel()
    return counts.most_common(1)[0][0] if counts else None


def resolve_adapter_dtype(choice: str | torch.dtype, base_dtype: torch.dtype | None) -> torch.dtype:
    """``auto``: fp32 on a bf16 / fp16 base, else the base's dtype (fp32 when there is none)."""
    if isinstance(choice, torch.dtype):
        return choice
    if choice not in ADAPTER_DTYPES:
        raise ValueError(f"adapter_dtype must be one of {', '.join(ADAPTER_DTYPES)}; got {choice!r}")
    if choice != "auto":
        return getattr(torch, choice)
    if base_dtype is None or base_dtype in HALF_DTYPES:
        return torch.float32
    return base_dtype


def cast_parameters(params: Iterable[nn.Parameter], dtype: torch.dtype) -> int:
    """Convert floating ``params`` to ``dtype`` in place (the same Parameter objects, so module
    attributes, ``ParameterDict`` entries and tied references stay valid); returns how many changed."""
    changed = 0
    seen: set[int] = set()
    for p in params:
        if id(p) in seen or not p.is_floating_point() or p.dtype == dtype:
            continue
        seen.add(id(p))
        p.data = p.data.to(dtype)
        changed += 1
    return changed
