"""``swiftune sft``'s loss with the LM head fused into it (``swiftune.linear_cross_entropy``).

The model runs its usual forward, tuners and all, up to its output embedding; a forward pre-hook
on that head takes the hidden states it was about to project and hands it an empty slice instead,
so the model computes no logits (nor, without labels, a loss) and the loss is computed from those
hidden states in row chunks. Nothing about the model changes: the hook acts only inside
``HeadLoss.loss``; generation and evaluation with metrics see the ordinary head.

Whether that gives the model's own loss is not assumed from the architecture (a model may scale or
soft-cap its logits, a tuner may read the head): ``attach_head_loss`` runs the model once on a
tiny probe both ways and attaches only when the two losses agree.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from ..data import IGNORE_INDEX
from ..fused_loss import linear_cross_entropy
from .answer_logits import next_token_labels
from .probe import probe, probe_tokens


class HeadLoss:
    """The fused head + loss of one model (see the module docstring); ``close`` removes its hook."""

    def __init__(self, head: nn.Linear) -> None:
        self.head = head
        self._armed = False
        self._captured: list[torch.Tensor] = []
        self._weight_copy: tuple[tuple[Any, ...], torch.Tensor] | None = None
        self._handle = head.register_forward_pre_hook(self._take_hidden_states)

    def close(self) -> None:
        self._handle.remove()

    def _take_hidden_states(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self._armed:
            return None
        hidden = args[0]
        self._captured.append(hidden)
        return (hidden[..., :0, :], *args[1:])

    @contextlib.contextmanager
    def _capturing(self) -> Iterator[list[torch.Tensor]]:
        self._captured = []
        self._armed = True
        try:
            yield self._captured
        finally:
            self._armed = False

    def weight_in(self, dtype: torch.dtype) -> torch.Tensor:
        """The head weight for a forward in ``dtype``: a frozen weight is cast once and kept until it
        changes (autocast would re-cast it at every step: its cache skips tensors without grad); a
        trained one as it is (``linear_cross_entropy`` casts it, and the gradient flows back)."""
        weight = self.head.weight
        if weight.dtype == dtype or weight.requires_grad:
            return weight
        key = (weight.data_ptr(), weight._version, weight.device, dtype)
        if self._weight_copy is None or self._weight_copy[0] != key:
            self._weight_copy = (key, weight.detach().to(dtype))
        return self._weight_copy[1]

    def loss(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[torch.Tensor, Any]:
        """The causal-LM loss of ``inputs`` (the model's keyword arguments with ``labels``, or
        ``shift_labels`` already aligned with the kept positions, and optionally
        ``num_items_in_batch``) and the outputs of ``model`` (the hooked model or a wrapper of it
        such as DDP's), whose logits are empty."""
        labels = inputs.get("shift_labels")
        if labels is None:
            labels = next_token_labels(inputs["labels"])
        if num_items_in_batch is None:
            num_items_in_batch = inputs.get("num_items_in_batch")
        loss_only = ("labels", "shift_labels", "num_items_in_batch")
        model_inputs = {k: v for k, v in inputs.items() if k not in loss_only}
        with self._capturing() as captured:
            outputs = model(**model_inputs)
        if len(captured) != 1:
            raise RuntimeError(f"fused head loss: the LM head ran {len(captured)} times in one forward; "
                               "train with --no-fused-head-loss")
        hidden = captured[0]
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        loss = linear_cross_entropy(hidden, self.weight_in(dtype), labels, num_items_in_batch=num_items_in_batch)
        return loss, outputs


#: Config fields of transformers models that transform the head's logits before the loss. The probe
#: would catch them too, but a soft cap is nearly the identity on small logits, so they are named.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def fusable_head(model: nn.Module) -> nn.Linear | None:
    """The model's output embedding when it is a plain, bias-free ``nn.Linear`` (frozen, or trained
    whole as in full fine-tuning) whose logits go to the loss untransformed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if type(head) is not nn.Linear or head.bias is not None:
        return None
    config = getattr(base, "config", None)
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in LOGIT_TRANSFORMS):
        return None
    return head


def attach_head_loss(model: nn.Module) -> HeadLoss | None:
    """A ``HeadLoss`` on ``model`` when a probe shows it gives the model's own loss, else None."""
    head = fusable_head(model)
    if head is None:
        return None
    head_loss = HeadLoss(head)
    if not _gives_model_loss(model, head_loss):
        head_loss.close()
        return None
    return head_loss


def _gives_model_loss(model: nn.Module, head_loss: HeadLoss) -> bool:
    ids = torch.tensor([probe_tokens(6, head_loss.head.out_features)], device=head_loss.head.weight.device)
    labels = ids.clone()
    labels[0, :2] = IGNORE_INDEX
    both = probe(model, lambda: (model(input_ids=ids, labels=labels, use_cache=False).loss,
                                 head_loss.loss(model, {"input_ids": ids, "labels": labels, "use_cache": False})[0]))
    if both is None or not isinstance(both[0], torch.Tensor):
        return False
    expected, got = both
    tolerance = 1e-4 if head_loss.head.weight.dtype == torch.float32 else 2e-2
    return bool(((got.float() - expected.float()).abs() <= tolerance * max(1.0, expected.abs().item())).item())
