"""What ``swiftune sft`` does to spend less work on the same loss, decided once per run.

Padding-free batches (``padding_free``), LM-head logits only at labelled positions
(``answer_logits``), the LM head fused into the loss in row chunks (``head_loss``), frozen Linear
weights stored in the autocast dtype (``frozen_weights``), and the opt-in regional compilation
(``regional_compile``). Each module says why its path gives the loss of the plain one; this one
says when each applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .arguments import SftArguments

if TYPE_CHECKING:
    from .head_loss import HeadLoss


@dataclass
class LeanTraining:
    """The less-work-for-the-same-loss choices of one run (see ``lean_training``)."""

    padding_free: bool
    answer_logits_only: bool
    cast_linears: int
    compiled_blocks: int = 0
    head_loss: HeadLoss | None = None
    packed_attention: bool = False

    def describe(self) -> str:
        parts = ["padding-free batches" if self.padding_free else "padded batches",
                 "logits at labelled positions only" if self.answer_logits_only else "logits everywhere"]
        if self.head_loss is not None:
            parts.append("LM head fused into the loss")
        if self.cast_linears:
            parts.append(f"{self.cast_linears} frozen Linear layers stored in the autocast dtype")
        if self.packed_attention:
            parts.append("attention per example of a padding-free row")
        if self.compiled_blocks:
            parts.append(f"{self.compiled_blocks} blocks compiled")
        return ", ".join(parts)


def lean_training(args: SftArguments, swift: Any, precision: str) -> LeanTraining:
    """Decide (and for frozen weights, apply) what saves work without changing the loss.

    Prompt-learning tuners rewrite each row (virtual tokens), so they get neither padding-free
    rows nor position-selected logits. ``padding_free=True`` on a model that fails the check is
    an error; left unset, the check decides.
    """
    from ..frozen_weights import cast_frozen_linears
    from .answer_logits import supports_answer_logits
    from .head_loss import attach_head_loss
    from .packed_attention import set_attention, use_packed_attention
    from .padding_free import honours_restarts
    from .regional_compile import compile_blocks
    from .runtime import torch_dtype

    tuners = [swift.tuners[n] for n in swift.active_adapters]
    rewrites_rows = any(t.prompt_learning for t in tuners)
    padding_free = False
    if args.padding_free is not False and not rewrites_rows:
        padding_free = honours_restarts(swift)
    if args.padding_free and not padding_free:
        why = "a prompt-learning tuner adds virtual tokens to each row" if rewrites_rows else (
            "it lets the examples of one row attend to each other")
        raise ConfigError(f"padding_free: {args.model} cannot train on padding-free rows ({why}); "
                          "drop --padding-free")
    # Not with --compile: finding the examples of a row reads their lengths on the host (a graph break).
    packed = padding_free and not args.compile and use_packed_attention(swift.get_base_model())
    if packed and not honours_restarts(swift):  # the same check, now through the per-example attention
        set_attention(swift.get_base_model(), "sdpa")
        packed = False
    answer_logits = args.answer_logits_only and not rewrites_rows and supports_answer_logits(swift)
    head_loss = None
    if args.fused_head_loss and not rewrites_rows and not (args.fsdp or args.deepspeed):
        head_loss = attach_head_loss(swift)
    cast = 0  # after the head-loss probe, which runs the model in fp32
    if (args.cast_frozen_weights and precision in ("bf16", "fp16") and not (args.fsdp or args.deepspeed)
            and all(t.calls_frozen_linears_only for t in tuners)):
        cast = len(cast_frozen_linears(swift.get_base_model(), torch_dtype(precision)))
    compiled = 0
    if args.compile:
        if rewrites_rows:
            raise ConfigError("compile: prompt-learning tuners feed a KV cache to every block, which recompiles; "
                              "drop --compile")
        compiled = compile_blocks(swift.get_base_model())
        if not compiled:
            raise ConfigError(f"compile: {args.model} has no list of repeated blocks to compile; drop --compile")
    return LeanTraining(padding_free, answer_logits, cast, compiled, head_loss, packed)
