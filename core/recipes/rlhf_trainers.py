"""TRL's preference trainers with swiftune's checkpoints and reference model.

Each trainer is TRL's own (its losses, metrics and data collation are not re-implemented) plus two
mixins: ``AdapterCheckpoints`` (checkpoints hold the adapters, published atomically, exact resume)
and ``ReferenceByDisabling``. TRL is given the transformers model inside the ``SwiftModel`` (the
adapters live in it, injected in place; prompt-learning tuners act through its forward hooks), so
TRL computes log-probabilities exactly as on a plain model.

The reference model. DPO and KTO compare the policy with a reference. When the tuner leaves the
base weights untouched, the reference *is* the base model: TRL's ``precompute_ref_log_probs`` runs
one pass over the data before training through ``compute_ref_log_probs`` (a public TRL method),
which the mixin runs inside ``SwiftModel.disable_adapters()``. No second model is loaded and no
reference forward runs during training. A tuner that trains base weights (``full``, ``part``)
or ``--ref_model`` gives TRL a separate reference model instead, used by TRL as usual. ORPO, CPO and
SimPO need no reference; GRPO needs one only with ``beta > 0`` (then a separate copy).
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..errors import ConfigError
from .rlhf_arguments import RlhfArguments
from .trainer import AdapterCheckpoints


class ReferenceByDisabling:
    """Mixin for TRL's DPO / KTO trainers: with no ``ref_model``, reference log-probabilities are the
    policy's with its adapters disabled."""

    swift: Any = None
    ref_model: Any = None

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
        with self.swift.disable_adapters() if self.ref_model is None else contextlib.nullcontext():
            return super().compute_ref_log_probs(model, inputs)


class NoModelCard:
    """swiftune's run folder describes the run (``args.json``); TRL's Hub model card is not written into it."""

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        return None


def trainer_class(rlhf_type: str) -> type:
    """The trainer class of a method (TRL imported here: it is heavy)."""
    if rlhf_type == "dpo":
        from trl import DPOTrainer as base
    elif rlhf_type == "kto":
        from trl import KTOTrainer as base
    elif rlhf_type in ("cpo", "simpo"):
        from trl.experimental.cpo import CPOTrainer as base
    elif rlhf_type == "orpo":
        from trl.experimental.orpo import ORPOTrainer as base
    elif rlhf_type == "grpo":
        from trl import GRPOTrainer as base
    else:
        raise ConfigError(f"--rlhf_type: unknown method {rlhf_type!r}")
    mixins = (AdapterCheckpoints, ReferenceByDisabling, NoModelCard) if rlhf_type in ("dpo", "kto") else \
        (AdapterCheckpoints, NoModelCard)
    return type(f"Swift{base.__name__}", (*mixins, base), {"__module__": __name__})


_TRUNCATION = {"right": "keep_start", "left": "keep_end"}


def method_config(args: RlhfArguments, common: dict[str, Any], precompute_reference: bool) -> Any:
    """TRL's config of the method: the run's ``TrainingArguments`` fields plus the method's knobs."""
    kind = args.rlhf_type
    beta = args.method_beta()
    extra: dict[str, Any] = {} if beta is None else {"beta": beta}
    allowed = ("right", "left") if kind == "dpo" else ("right",)
    if args.truncation not in allowed:
        raise ConfigError(f"--truncation {args.truncation}: {kind} cuts long rows on the {' or '.join(allowed)}")
    if kind == "dpo":
        from trl import DPOConfig as config_cls

        loss_type = list(args.loss_type or ["sigmoid"])
        weights = [1.0] * len(loss_type)
        if args.rpo_alpha is not None:  # RPO: DPO plus an NLL loss on the chosen answers, weighted
            loss_type.append("sft")
            weights.append(args.rpo_alpha)
        extra.update(loss_type=loss_type, loss_weights=weights, label_smoothing=args.label_smoothing,
                     max_length=args.max_length, truncation_mode=_TRUNCATION[args.truncation],
                     precompute_ref_log_probs=precompute_reference)
    elif kind == "kto":
        from trl import KTOConfig as config_cls

        extra.update(desirable_weight=args.desirable_weight, undesirable_weight=args.undesirable_weight,
                     max_length=args.max_length, precompute_ref_log_probs=precompute_reference,
                     train_sampling_strategy="sequential")
        if args.loss_type:
            extra["loss_type"] = _one(args.loss_type)
    elif kind in ("cpo", "simpo"):
        from trl.experimental.cpo import CPOConfig as config_cls

        if kind == "simpo" and args.loss_type not in (None, ["simpo"]):
            raise ConfigError(f"--loss_type {' '.join(args.loss_type)}: simpo is CPO's trainer with loss_type simpo")
        alpha = args.cpo_alpha if args.cpo_alpha is not None else (0.0 if kind == "simpo" else 1.0)
        loss_type = "simpo" if kind == "simpo" else _one(args.loss_type or ["sigmoid"])
        extra.update(loss_type=loss_type, cpo_alpha=alpha, simpo_gamma=args.simpo_gamma,
                     label_smoothing=args.label_smoothing, max_length=args.max_length)
    elif kind == "orpo":
        from trl.experimental.orpo import ORPOConfig as config_cls

        if args.loss_type:
            raise ConfigError("--loss_type: orpo has one loss (NLL plus the odds-ratio term); leave it out")
        extra.update(max_length=args.max_length)
    else:
        from trl import GRPOConfig as config_cls

        extra.update(num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                     temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or 0,
                     repetition_penalty=args.repetition_penalty, log_completions=args.log_completions,
                     use_vllm=args.use_vllm, reward_weights=args.reward_weights)
        if args.loss_type:
            extra["loss_type"] = _one(args.loss_type)
    return config_cls(**common, **extra)


def _one(values: list[str]) -> str:
    if len(values) != 1:
        raise ConfigError(f"--loss_type: this method takes one loss type, got {' '.join(values)}")
    return values[0]


def reward_functions(names: list[str]) -> list[Any]:
    """The registered reward functions, as callables TRL logs under their names."""
    from .. import registries

    return [registries.rewards.get(name).as_trl() for name in names]
