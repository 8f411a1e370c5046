"""``TrainableCopy``: PEFT's ``modules_to_save`` — a trainable per-adapter copy of a whole module.

Typical use: a classification head that is new for the task. Saved under the module's own key
names (``classifier.weight``), exactly as PEFT writes them.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from .layers import WrapperLayer
from .module_utils import Site, get_module, iter_sites, name_matches, set_module

PEFT_PREFIX = "base_model.model."


class TrainableCopy(WrapperLayer):
    """Runs the copy of the last active adapter that has one, else the untouched original."""

    adapter_containers = ("modules_to_save",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.modules_to_save = nn.ModuleDict()
        self._current: str | None = None

    def add(self, name: str) -> None:
        self.modules_to_save[name] = copy.deepcopy(self.base_layer)
        for p in self.modules_to_save[name].parameters():
            p.requires_grad_(True)

    def _on_state_change(self) -> None:
        chosen = [n for n in self.active_adapters if n in self.modules_to_save]
        self._current = chosen[-1] if chosen else None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._current is None:
            return self.base_layer(*args, **kwargs)
        return self.modules_to_save[self._current](*args, **kwargs)


class ModulesToSave:
    """Per-adapter bookkeeping of ``modules_to_save``; used by tuners whose config has it."""

    def __init__(self, adapter_name: str, names: Sequence[str] | None) -> None:
        self.adapter_name = adapter_name
        self.names = list(names or [])
        self.paths: list[str] = []
        #: Set while the owning adapter is merged: unloading then keeps the trained copies.
        self.merged = False

    def inject(self, model: nn.Module) -> None:
        if not self.names:
            return
        sites: list[Site] = [s for s in iter_sites(model) if name_matches(s.name, self.names)]
        sites = [s for s in sites if not any(s.name.startswith(o.name + ".") for o in sites)]
        if not sites:
            raise ValueError(f"modules_to_save {self.names} matched no module")
        for site in sites:
            module = site.module
            if not isinstance(module, TrainableCopy):
                module = TrainableCopy(module)
                set_module(model, site.path, module)
            module.add(self.adapter_name)
            self.paths.append(site.path)

    def wrappers(self, model: nn.Module) -> Iterator[tuple[str, TrainableCopy]]:
        for path in self.paths:
            yield path, get_module(model, path)

    def set_active(self, model: nn.Module, active: bool) -> None:
        for _, w in self.wrappers(model):
            w.set_adapter_active(self.adapter_name, active)

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for path, w in self.wrappers(model):
            for n, p in w.modules_to_save[self.adapter_name].named_parameters():
                yield f"{path}.modules_to_save.{self.adapter_name}.{n}", p

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        out = {}
        for path, w in self.wrappers(model):
            for k, v in w.modules_to_save[self.adapter_name].state_dict().items():
                out[f"{PEFT_PREFIX}{path}.{k}"] = v
        return out

    def load_targets(
        self, model: nn.Module, state: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, tuple[torch.Tensor, str]]:
        """``{on-disk key: (tensor of the copy, module name)}`` for ``serialization.load_checked``.

        PEFT with ``bias="all"`` also writes ``<module>.modules_to_save.bias`` (the copy's bias
        again) and ``<module>.original_module.bias``; where ``state`` has them they load as PEFT
        loads them: into the copy and into the original module.
        """
        out = {}
        for path, w in self.wrappers(model):
            for k, dest in w.modules_to_save[self.adapter_name].state_dict(keep_vars=True).items():
                out[f"{PEFT_PREFIX}{path}.{k}"] = (dest, f"{path}.{k}")
                extra = f"{PEFT_PREFIX}{path}.modules_to_save.{k}"
                if state is not None and extra in state:
                    out[extra] = (dest, f"{path}.{k}")
            if state is not None:
                for k, dest in w.base_layer.state_dict(keep_vars=True).items():
                    extra = f"{PEFT_PREFIX}{path}.original_module.{k}"
                    if extra in state:
                        out[extra] = (dest, f"{path}.{k}")
        return out

    def load_state_dict(self, model: nn.Module, state: dict[str, torch.Tensor]) -> set[str]:
        """Loads the copies' tensors; returns the keys it consumed."""
        from .serialization import copy_checked

        targets = self.load_targets(model)
        for key, (dest, module) in targets.items():
            copy_checked(dest, state, key, module)
        return set(targets)

    def remove(self, model: nn.Module) -> None:
        """Drop the copies; a merged adapter's copies replace the originals (merge_and_unload)."""
        for path in self.paths:
            w = get_module(model, path)
            if not isinstance(w, TrainableCopy):  # already replaced by another merged adapter's copy
                continue
            copy_ = w.modules_to_save[self.adapter_name] if self.merged else None
            w.delete_adapter(self.adapter_name)
            if copy_ is not None:
                set_module(model, path, copy_)
            elif not w.modules_to_save:
                set_module(model, path, w.base_layer)
        self.paths = []
