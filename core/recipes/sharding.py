"""Saving adapters whose parameters are sharded across processes (FSDP2, DeepSpeed ZeRO-3).

Under FSDP2 a parameter is a DTensor holding this rank's shard; under ZeRO-3 it is an empty
placeholder outside the forward pass. A tuner's ``state_dict`` reads the module's parameters, so
before saving, every rank takes part in gathering them (``FSDPModule.unshard`` /
``deepspeed.zero.GatheredParameters``); the main process writes the full tensors, and the shards
are restored after. The Trainer calls ``_save`` on every rank in these two cases, which is what
makes the collective gather possible there.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

from ..errors import ConfigError


def _zero3_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if hasattr(p, "ds_id")]


def _fsdp2_modules(model: nn.Module) -> list[nn.Module]:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2
        return []
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model: nn.Module) -> bool:
    """True when some parameter of ``model`` is split across ranks (FSDP2 or ZeRO-3)."""
    return bool(_fsdp2_modules(model) or _zero3_parameters(model))


@contextlib.contextmanager
def full_parameters(model: nn.Module) -> Iterator[None]:
    """Inside, every parameter of ``model`` is whole on every rank (a collective: all ranks enter)."""
    fsdp = _fsdp2_modules(model)
    zero3 = _zero3_parameters(model)
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(zero3, modifier_rank=None):
            yield
        return
    for module in fsdp:
        module.unshard()
    try:
        yield
    finally:
        for module in fsdp:
            module.reshard()


def check_fsdp_device(fsdp: str | None, has_accelerator: bool) -> None:
    """accelerate shards only on GPUs (and other accelerators): on CPU the Trainer would train plain
    DDP while the user asked for FSDP, so refuse instead."""
    if fsdp and not has_accelerator:
        raise ConfigError(
            "--fsdp: accelerate runs FSDP only on GPUs / accelerators; on CPU the Trainer would silently train "
            "with DDP. Drop --fsdp on CPU (torchrun alone gives DDP)"
        )
