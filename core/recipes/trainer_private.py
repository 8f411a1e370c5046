"""Every private part of transformers' ``Trainer`` that ``SwiftTrainer`` (``trainer.py``) relies on.

The Trainer has no public hook for these, so each is named here with why it is needed and what
of it is relied on; ``problems()`` checks them against the installed transformers (signatures
through ``inspect``, and the calls / names inside a method that the override counts on), and
tests/test_trainer_private.py fails with the dependency's name when a release changes one.
Public hooks are used wherever one exists: ``compute_loss`` (overridden, public), the callbacks
of ``callbacks.py`` (logging, the run folder), ``TrainerState`` for the best checkpoint.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PrivateDependency:
    """One private ``Trainer`` member: its parameters as relied on, names its code must use, why."""

    name: str
    params: tuple[str, ...] | None
    why: str
    #: Names the member's code must reference (``co_names``): the behaviour the override counts on.
    uses: tuple[str, ...] = ()


DEPENDENCIES: tuple[PrivateDependency, ...] = (
    PrivateDependency(
        "_save", ("self", "output_dir", "state_dict"),
        "writes the model files of save_model / a checkpoint: overridden to write the adapters alone "
        "(SwiftModel.save_pretrained) instead of the whole state dict",
    ),
    PrivateDependency(
        "save_model", ("self", "output_dir", "_internal_call"),
        "the public save reaches the files through _save (the override above), on one process and under FSDP",
        uses=("_save",),
    ),
    PrivateDependency(
        "_load_from_checkpoint", ("self", "resume_from_checkpoint", "model"),
        "resume: overridden to load the adapters back into the tuners already on the model",
    ),
    PrivateDependency(
        "_load_best_model", ("self",),
        "load_best_model_at_end: overridden to load the best checkpoint's adapters",
    ),
    PrivateDependency(
        "_get_output_dir", ("self", "trial"),
        "the run folder checkpoints go into: overridden to point at <output>/.staging while a checkpoint "
        "is written, so it is published whole by one rename",
    ),
    PrivateDependency(
        "_save_checkpoint", ("self", "model", "trial"),
        "writes one checkpoint (model, optimizer, scheduler, RNG, state): wrapped to stage and publish it "
        "atomically; it must find its folder through _get_output_dir and save the model through save_model",
        uses=("_get_output_dir", "save_model"),
    ),
    PrivateDependency(
        "compute_loss", ("self", "model", "inputs", "return_outputs", "num_items_in_batch"),
        "the fused head loss returns the loss Trainer.compute_loss would: it copies its scaling for "
        "token-averaged losses across devices (model_accepts_loss_kwargs, average_tokens_across_devices, "
        "num_processes // get_tp_size(), n_gpu) and its conditions (label_smoother, compute_loss_func)",
        uses=("model_accepts_loss_kwargs", "average_tokens_across_devices", "get_tp_size", "num_processes",
              "n_gpu", "label_smoother", "compute_loss_func"),
    ),
    PrivateDependency(
        "get_tp_size", ("self",),
        "the tensor-parallel size in compute_loss's scaling (copied by the fused head loss)",
    ),
)


def _trainer() -> Any:
    from transformers import Trainer

    return Trainer


def _code_names(func: Any) -> set[str]:
    """Names referenced by ``func``'s code and the code objects nested in it (comprehensions, closures)."""
    code = getattr(inspect.unwrap(func), "__code__", None)
    names: set[str] = set()
    stack = [code] if code is not None else []
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if inspect.iscode(c))
    return names


def problems(trainer_class: type | None = None) -> list[str]:
    """One message per dependency that ``trainer_class`` (default: the installed transformers'
    ``Trainer``) no longer meets; empty when all are met."""
    import transformers

    owner = trainer_class or _trainer()
    out = []
    for dep in DEPENDENCIES:
        where = f"transformers {transformers.__version__}: {owner.__name__}.{dep.name}"
        member = inspect.getattr_static(owner, dep.name, None)
        if member is None:
            out.append(f"{where} is gone; swiftune relies on it: {dep.why} (core/recipes/trainer_private.py)")
            continue
        func = getattr(owner, dep.name)
        if dep.params is not None:
            params = tuple(inspect.signature(func).parameters)
            if params != dep.params:  # a new parameter too: the Trainer would pass it to our override
                out.append(f"{where} now takes {params}, swiftune expects {dep.params}: {dep.why}")
        missing = [n for n in dep.uses if n not in _code_names(func)]
        if missing:
            out.append(f"{where} no longer uses {', '.join(missing)}: {dep.why}")
    return out
