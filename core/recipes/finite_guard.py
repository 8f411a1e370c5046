"""Stop a run whose loss, gradient norm or trained weights become NaN / inf.

Such a run used to finish with exit code 0 and an all-NaN adapter (``--learning-rate inf``, an
overflow, a bad row). ``FiniteGuard`` checks the trained parameters after every optimizer step
(``on_step_end`` runs before the Trainer logs, evaluates or saves that step), and the logged loss
and gradient norm, and raises ``NonFiniteError`` naming the step. So no checkpoint and no
``final/`` is ever written with non-finite weights, and the last published checkpoint stays as it
was: it is the last good one. The Trainer's ``logging_nan_inf_filter`` must be off for the logged
loss to show a NaN (sft turns it off).

Under fp16 the gradient scaler skips steps whose gradients overflow (the weights stay finite), so
there a non-finite gradient norm alone is not an error. In a distributed run each rank checks the
tensors it holds (an FSDP2 DTensor's local shard) and the verdict is shared by all ranks (tested on
one process only). Under DeepSpeed ZeRO-3 the module's parameters are empty placeholders, so there
only the logged loss and gradient norm are checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import torch
from transformers import TrainerCallback

from ..errors import SwiftuneError


class NonFiniteError(SwiftuneError):
    """Training produced a NaN / inf loss, gradient norm or weight; the message names the step."""


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if hasattr(p, "to_local") else p  # a DTensor shard (FSDP2)


def nonfinite_parameters(params: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the tensors holding NaN / inf (one device sync; agreed over all ranks)."""
    named = [(n, _local(p).detach()) for n, p in params]
    named = [(n, p) for n, p in named if p.numel() and p.is_floating_point()]
    if named:
        device = named[0][1].device
        # A sum is NaN / inf when any element is (inf - inf is NaN), and needs no tensor-sized
        # temporary as isfinite() would (half a GB for a large embedding under full fine-tuning).
        sums = torch.stack([p.sum(dtype=torch.float32).to(device) for _, p in named])
        flags = torch.isfinite(sums)
        all_ok = flags.all().to(torch.int32)
    else:
        flags, all_ok = None, torch.ones((), dtype=torch.int32)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if named:
            all_ok = all_ok.to(named[0][1].device)
        elif torch.distributed.get_backend() == "nccl":
            all_ok = all_ok.cuda()
        torch.distributed.all_reduce(all_ok, op=torch.distributed.ReduceOp.MIN)
    if bool(all_ok.item()):
        return []
    if flags is None:
        return ["(on another rank)"]
    bad = [n for (n, _), ok in zip(named, flags.tolist()) if not ok]
    return bad or ["(on another rank)"]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


class FiniteGuard(TrainerCallback):
    """Raise ``NonFiniteError`` at the first step whose loss, gradient norm or weights are not finite."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def _last_good(self) -> str:
        from .trainer import newest_checkpoint

        found = newest_checkpoint(self.output_dir)
        if found is None:
            return "no checkpoint was written before it"
        return f"the last good checkpoint is {found} (resume from it with a lower --learning-rate)"

    @staticmethod
    def _trained(model: Any) -> list[tuple[str, torch.Tensor]]:
        return [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step == 0:
            return
        bad = nonfinite_parameters(self._trained(model))
        if bad:
            raise NonFiniteError(
                f"the checkpoint of step {state.global_step} holds NaN/inf weights ({_shown(bad)}); "
                "resume from an earlier checkpoint (--resume FOLDER)"
            )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        bad = nonfinite_parameters(self._trained(model))
        if bad:
            raise NonFiniteError(
                f"step {state.global_step}: the trained weights became NaN/inf ({_shown(bad)}) - a NaN/inf loss "
                f"or gradient, or a learning rate too high ({args.learning_rate}); training stopped and these "
                f"weights were not saved; {self._last_good()}"
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        checked = ["loss"] if args.fp16 else ["loss", "grad_norm"]  # fp16: the scaler skips overflowing steps
        for key in checked:
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise NonFiniteError(
                    f"step {state.global_step}: the training {key.replace('_', ' ')} is {value} - the model "
                    f"diverged (learning rate {args.learning_rate}); training stopped; {self._last_good()}"
                )
