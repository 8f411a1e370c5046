"""Model structure tuners need: the repeated blocks, the hidden width, the wrappers already in place.

Found generically (no per-family tables): the blocks are the children of the largest
``nn.ModuleList`` of same-class modules (``model.layers``, ``transformer.h``, ``encoder.layer``, ...).
Names are logical (they look through wrapper layers), so targets and saved keys do not depend on
which other tuners wrap what.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from torch import nn

from .layers import WrapperLayer
from .module_utils import Site, is_linear, iter_sites, name_matches
from .wrapper_tuner import WrapperLayerTuner  # its home before it had one; plugins import it from here

__all__ = ["find_blocks", "select_blocks", "hidden_size", "linear_features", "wrapper_sites", "WrapperLayerTuner"]


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def find_blocks(model: nn.Module) -> list[Site]:
    """The children of the model's main block list, in order (empty when there is none)."""
    sites = list(iter_sites(model))
    children: dict[str, list[Site]] = {}
    for s in sites:
        parent, _, last = s.name.rpartition(".")
        if last.isdigit():
            children.setdefault(parent, []).append(s)
    best: list[Site] = []
    best_size = 0
    for s in sites:
        if not isinstance(s.base, nn.ModuleList) or s.name not in children:
            continue
        blocks = children[s.name]
        kinds = {type(b.base) for b in blocks}
        if len(kinds) != 1 or not any(True for _ in blocks[0].base.children()):
            continue  # a list of leaves (e.g. experts' Linears) or of mixed modules is not a block list
        size = sum(_numel(b.base) for b in blocks)
        if size > best_size:
            best, best_size = blocks, size
    return best


def select_blocks(
    model: nn.Module, target_modules: str | Sequence[str] | None, exclude_modules: str | Sequence[str] | None = None
) -> list[Site]:
    """``target_modules`` (regex or names / suffixes) over all modules, or every block when None."""
    if target_modules is None:
        chosen = find_blocks(model)
        if not chosen:
            raise ValueError("found no repeated block list (model.layers, transformer.h, ...); set target_modules")
    else:
        chosen = [s for s in iter_sites(model) if name_matches(s.name, target_modules)]
    return [s for s in chosen if not name_matches(s.name, exclude_modules)]


def hidden_size(model: nn.Module) -> int | None:
    """The model's hidden width from its (text) config, or None for plain modules."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    getter = getattr(config, "get_text_config", None)
    text = getter() if callable(getter) else config
    for attr in ("hidden_size", "n_embd", "d_model"):
        value = getattr(text, attr, None)
        if isinstance(value, int):
            return value
    return None


def linear_features(module: nn.Module) -> tuple[int, int] | None:
    """``(in, out)`` of a Linear or GPT-2 Conv1D (weight stored transposed), else None."""
    if not is_linear(module):
        return None
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape
    return rows, cols


def wrapper_sites(model: nn.Module, cls: type[WrapperLayer]) -> Iterator[tuple[str, str, WrapperLayer]]:
    """``(logical name, path, wrapper)`` of every ``cls`` wrapper, also inside other wrappers."""
    for site in iter_sites(model):
        module, path = site.module, site.path
        while isinstance(module, WrapperLayer):
            if isinstance(module, cls):
                yield site.name, path, module
            module, path = module.base_layer, f"{path}.base_layer"
