"""Finding target modules and swapping modules in a model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from torch import nn

from .layers import WrapperLayer

ALL_LINEAR = "all-linear"
#: Names of the repeated-block list in common architectures, for ``layers_to_transform``.
DEFAULT_LAYERS_PATTERN = ("layers", "h", "layer", "blocks", "block")


@dataclass(frozen=True)
class Site:
    """A module as targets see it: ``name`` looks through wrappers, ``path`` is where it sits."""

    name: str
    path: str
    module: nn.Module

    @property
    def base(self) -> nn.Module:
        m = self.module
        return m.get_base_layer() if isinstance(m, WrapperLayer) else m


def iter_sites(model: nn.Module) -> Iterator[Site]:
    """Every module of ``model`` under its logical name, skipping adapters' own parts."""

    def walk(module: nn.Module, name: str, path: str) -> Iterator[Site]:
        for child_name, child in module.named_children():
            child_logical = f"{name}.{child_name}" if name else child_name
            child_path = f"{path}.{child_name}" if path else child_name
            yield Site(child_logical, child_path, child)
            inner, inner_path = child, child_path
            while isinstance(inner, WrapperLayer):
                inner, inner_path = inner.base_layer, f"{inner_path}.base_layer"
            yield from walk(inner, child_logical, inner_path)

    yield from walk(model, "", "")


def get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path) if path else model


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    setattr(get_module(model, parent_path), attr, new)


def is_linear(module: nn.Module) -> bool:
    """``nn.Linear`` or transformers' GPT-2 style ``Conv1D`` (a linear with transposed weight)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def output_embedding_names(model: nn.Module) -> set[str]:
    getter = getattr(model, "get_output_embeddings", None)
    out = getter() if callable(getter) else None
    if out is None:
        return set()
    return {s.name for s in iter_sites(model) if s.module is out or s.base is out}


def name_matches(name: str, spec: str | Sequence[str] | None) -> bool:
    """PEFT's rule: a string is a regex matched in full; a list matches exact names or suffixes."""
    if spec is None:
        return False
    if isinstance(spec, str):
        return re.fullmatch(spec, name) is not None
    return any(name == t or name.endswith("." + t) for t in spec)


def is_within(name: str, spec: Sequence[str]) -> bool:
    """``name`` or one of its ancestors matches ``spec`` (exact names or suffixes)."""
    parts = name.split(".")
    return any(name_matches(".".join(parts[:i]), spec) for i in range(1, len(parts) + 1))


def layer_index(name: str, patterns: str | Sequence[str] | None = None) -> int | None:
    pats = [patterns] if isinstance(patterns, str) else list(patterns or DEFAULT_LAYERS_PATTERN)
    alternatives = "|".join(re.escape(p) for p in pats)
    m = re.search(rf"(?:^|\.)(?:{alternatives})\.(\d+)(?:\.|$)", name)
    return int(m.group(1)) if m else None


def find_targets(
    model: nn.Module,
    target_modules: str | Sequence[str] | None,
    *,
    supported: Callable[[nn.Module], bool],
    exclude_modules: str | Sequence[str] | None = None,
    layers_to_transform: int | Sequence[int] | None = None,
    layers_pattern: str | Sequence[str] | None = None,
    skip_names: set[str] = frozenset(),
) -> list[Site]:
    """Sites selected by ``target_modules`` (``"all-linear"``, regex or names) minus exclusions.

    ``skip_names`` (e.g. ``modules_to_save``) are left alone together with everything inside them,
    since those modules are copied whole.
    """
    skip = list(skip_names)
    sites = [s for s in iter_sites(model) if not (skip and is_within(s.name, skip))]
    if isinstance(target_modules, str) and target_modules.lower() == ALL_LINEAR:
        heads = output_embedding_names(model)
        chosen = [s for s in sites if is_linear(s.base) and s.name not in heads]
    else:
        chosen = [s for s in sites if name_matches(s.name, target_modules)]
    chosen = [s for s in chosen if not name_matches(s.name, exclude_modules)]
    if layers_to_transform is not None:
        wanted = {layers_to_transform} if isinstance(layers_to_transform, int) else set(layers_to_transform)
        chosen = [s for s in chosen if layer_index(s.name, layers_pattern) in wanted]
    bad = [s for s in chosen if not supported(s.base)]
    if bad and not (isinstance(target_modules, str) and target_modules.lower() == ALL_LINEAR):
        s = bad[0]
        raise ValueError(f"target module '{s.name}' is a {type(s.base).__name__}, which this tuner does not support")
    return [s for s in chosen if supported(s.base)]
