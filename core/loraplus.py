"""LoRA+ optimizer parameter groups: the B matrices learn ``lr_ratio`` times faster than the A ones.

LoRA+ (Hayou et al., 2024, https://arxiv.org/abs/2402.12354) shows that with one learning rate for
both factors of ``B A`` the update is inefficient at width; a larger rate for B (ratio 2 to 16 or
more) trains faster. The grouping is PEFT's (``peft.optimizers.create_loraplus_optimizer``), so a
run means the same in both libraries:

* ``B``: every ``lora_B`` matrix and every other trainable 1-D tensor (DoRA magnitudes, trained
  biases), at ``lr * lr_ratio``;
* ``embedding``: the LoRA factors of embedding layers (``lora_embedding_A`` / ``_B`` and anything
  else the same LoRA layer trains), at ``embedding_lr`` (PEFT's default: 1e-6);
* ``A``: every other trainable parameter (``lora_A``, ``modules_to_save`` copies, other tuners'
  matrices), at ``lr``.

Parameters are classified by name and module attributes only, so LoRA layers of swiftune and of
PEFT (through the ``peft`` bridge tuner) are both recognised, and the core imports no tuner.
"""

from __future__ import annotations

from typing import Any, Collection

import torch
from torch import nn

from .errors import ConfigError

#: PEFT's ``loraplus_lr_embedding`` default.
EMBEDDING_LR = 1e-6
_EMBEDDING_FACTORS = ("lora_embedding_A", "lora_embedding_B")


def loraplus_groups(model: nn.Module) -> dict[str, dict[str, nn.Parameter]]:
    """Trainable parameters of ``model`` by LoRA+ group: ``{"A" | "B" | "embedding": {name: param}}``."""
    embedding_params = _embedding_adapter_params(model)
    groups: dict[str, dict[str, nn.Parameter]] = {"A": {}, "B": {}, "embedding": {}}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in embedding_params:
            groups["embedding"][name] = p
        elif "lora_B" in name.split(".") or p.ndim == 1:
            groups["B"][name] = p
        else:
            groups["A"][name] = p
    return groups


def loraplus_param_groups(
    model: nn.Module,
    lr: float,
    lr_ratio: float,
    *,
    weight_decay: float = 0.0,
    embedding_lr: float = EMBEDDING_LR,
    decay_names: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for LoRA+ (pass them to any ``torch.optim`` optimizer).

    ``decay_names``: the parameter names that take ``weight_decay`` (the Trainer's
    ``get_decay_parameter_names``); None: all of them. Empty groups are left out.
    """
    if lr_ratio <= 0:
        raise ConfigError(f"lorap_lr_ratio must be > 0 (got {lr_ratio})")
    groups = loraplus_groups(model)
    if not groups["B"] and not groups["embedding"]:
        raise ConfigError(
            "lorap_lr_ratio: the model trains no LoRA B matrix (LoRA+ applies to the lora / qlora tuners, "
            "or a LoRA config through the peft bridge)"
        )
    rates = {"A": lr, "B": lr * lr_ratio, "embedding": embedding_lr}
    out: list[dict[str, Any]] = []
    for kind, params in groups.items():
        decayed = [p for n, p in params.items() if decay_names is None or n in decay_names]
        plain = [p for n, p in params.items() if decay_names is not None and n not in decay_names]
        for members, decay in ((decayed, weight_decay), (plain, 0.0)):
            if members:
                out.append({"params": members, "lr": rates[kind], "weight_decay": decay, "loraplus_group": kind})
    return out


def _embedding_adapter_params(model: nn.Module) -> set[int]:
    """Ids of the parameters that LoRA layers of embeddings add (not their base layer's)."""
    found: set[int] = set()
    for module in model.modules():
        if not any(attr in module._modules or attr in module._parameters for attr in _EMBEDDING_FACTORS):
            continue
        base = module._modules.get("base_layer")
        own_base = {id(p) for p in base.parameters()} if base is not None else set()
        found |= {id(p) for p in module.parameters() if id(p) not in own_base}
    return found


# -- the transformers Trainer ----------------------------------------------------------------------------
def loraplus_optimizer(
    args: Any, lr_ratio: float | None, model: nn.Module | None = None, embedding_lr: float = EMBEDDING_LR
) -> tuple[Any, dict] | None:
    """``Trainer(optimizer_cls_and_kwargs=...)`` for LoRA+ (None when ``lr_ratio`` is None).

    ``model``, when given, is checked now (it must train LoRA B matrices) rather than when training starts.

    The optimizer is the one ``args.optim`` names, with its usual arguments; the Trainer calls the
    returned factory with its model when it creates the optimizer (``args`` are its
    ``TrainingArguments``: learning rate and weight decay come from them, the decay exemptions
    are the Trainer's own). The scheduler then scales each group's rate as usual.
    """
    if lr_ratio is None:
        return None
    from transformers import Trainer

    if model is not None:
        loraplus_param_groups(model, args.learning_rate, lr_ratio)
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    builds_own_groups = {"params", "model", "optimizer_dict"} & set(optimizer_kwargs)
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)) or builds_own_groups:
        raise ConfigError(f"lorap_lr_ratio: optimizer '{args.optim}' builds its own parameter groups; LoRA+ needs a "
                         "plain one (adamw_torch, adamw_torch_fused, sgd, adafactor, ...)")
    return _LoraPlusFactory, {
        "optimizer_cls": optimizer_cls, "optimizer_kwargs": optimizer_kwargs, "lr": args.learning_rate,
        "lr_ratio": lr_ratio, "weight_decay": args.weight_decay, "embedding_lr": embedding_lr,
    }  # fmt: skip


class _LoraPlusFactory:
    """What the Trainer instantiates and calls with its model (``transformers``' optimizer factory protocol)."""

    def __call__(self, model: nn.Module, *, optimizer_cls: type, optimizer_kwargs: dict[str, Any], lr: float,
                 lr_ratio: float, weight_decay: float, embedding_lr: float) -> torch.optim.Optimizer:
        groups = loraplus_param_groups(model, lr, lr_ratio, weight_decay=weight_decay, embedding_lr=embedding_lr,
                                       decay_names=set(decay_parameter_names(model)))
        return optimizer_cls(groups, **optimizer_kwargs)


def decay_parameter_names(model: nn.Module) -> list[str]:
    """The names ``Trainer.create_optimizer`` applies weight decay to (not biases, not norms)."""
    from transformers.trainer_pt_utils import get_parameter_names

    forbidden = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return get_parameter_names(model, [nn.LayerNorm], forbidden)
