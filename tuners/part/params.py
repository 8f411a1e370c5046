"""The base model's own parameters under their logical names (what ``part``, ``bitfit`` and
``full`` select, train and save).

Adapters' tensors are left out: those in a ``WrapperLayer``'s adapter containers, and modules that
tuners attach to the base under a ``swiftune_`` attribute (the prompt-learning encoders). Logical
names look through wrappers (``q_proj.base_layer.bias`` is ``q_proj.bias``), so they equal the
plain transformers state-dict keys whatever other tuners are stacked on the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from torch import nn

from swiftune.layers import WrapperLayer

#: Attribute prefix of the modules tuners attach to a base model (not base parameters).
TUNER_ATTRIBUTE_PREFIX = "swiftune_"


@dataclass(frozen=True)
class BaseParameter:
    """One occurrence of a base parameter (a tied parameter occurs under several names)."""

    name: str  # logical name, e.g. "model.layers.0.self_attn.q_proj.bias"
    module_name: str  # logical name of the module that owns it ("" for the root)
    path: str  # real attribute path in the model, e.g. "...q_proj.base_layer.bias"
    owner: nn.Module
    param: nn.Parameter


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def iter_base_parameters(model: nn.Module) -> Iterator[BaseParameter]:
    """Every occurrence of every base parameter, in ``named_parameters`` order, tied ones repeated."""

    def walk(module: nn.Module, name: str, path: str) -> Iterator[BaseParameter]:
        if not isinstance(module, WrapperLayer):
            for attr, p in module._parameters.items():
                if p is not None:
                    yield BaseParameter(_join(name, attr), name, _join(path, attr), module, p)
        for child_name, child in module._modules.items():
            if child is None or child_name.startswith(TUNER_ATTRIBUTE_PREFIX):
                continue
            if isinstance(module, WrapperLayer):
                if child_name == "base_layer":  # the wrapped module keeps the wrapper's logical name
                    yield from walk(child, name, _join(path, child_name))
                continue
            yield from walk(child, _join(name, child_name), _join(path, child_name))

    yield from walk(model, "", "")


def base_parameters(model: nn.Module) -> dict[str, BaseParameter]:
    """``{canonical logical name: first occurrence}``, one entry per distinct parameter."""
    out: dict[str, BaseParameter] = {}
    seen: set[int] = set()
    for bp in iter_base_parameters(model):
        if id(bp.param) not in seen:
            seen.add(id(bp.param))
            out[bp.name] = bp
    return out
