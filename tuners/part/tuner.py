"""The ``part`` and ``bitfit`` tuners: train a change of selected existing parameters.

Each adapter owns a zero-initialised ``delta`` per selected parameter (in ``PartLayer`` wrappers
around the owning modules); the forward pass uses ``parameter + delta``. The base parameters stay
frozen, so adapters switch, stack, disable and merge exactly like LoRA's. Saved keys are the
parameters' logical names (the plain state-dict keys) and the values are the deltas: loading adds
them onto the base's parameters, ``merge_and_unload`` writes ``base + delta`` into the model.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from swiftune.layers import WrapperLayer
from swiftune.module_utils import iter_sites, name_matches, set_module
from swiftune.serialization import load_checked
from swiftune.tuner import Tuner
from swiftune.structure import find_blocks, wrapper_sites
from swiftune.wrapper_tuner import WrapperLayerTuner

from .config import BitFitConfig, PartConfig
from .layer import PartLayer
from .params import BaseParameter, iter_base_parameters

NORM_CLASSES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.RMSNorm)


def is_norm(module: nn.Module) -> bool:
    """Normalisation layers, including the model-specific RMSNorm classes (``LlamaRMSNorm``, ...)."""
    return isinstance(module, NORM_CLASSES) or "norm" in type(module).__name__.lower()


class Part(WrapperLayerTuner, Tuner):
    name = "part"
    description = "train only the selected existing parameters (regex); the base stays frozen under per-adapter deltas"
    config_class = PartConfig
    mergeable = True
    identity_at_init = True
    #: The default (the last block) needs a repeated block list, which plain modules lack.
    default_targets_need_transformers = True

    config: PartConfig

    # -- selection ---------------------------------------------------------------------------------
    def _selected(self, model: nn.Module, occurrences: list[BaseParameter]) -> set[int]:
        """ids of the parameters this adapter trains (a tied parameter counts if any name matches)."""
        spec = self.config.target_parameters
        if spec is None:
            blocks = find_blocks(model)
            if not blocks:
                raise ValueError("found no repeated block list (model.layers, transformer.h, ...); set target_parameters")
            last = blocks[-1].name
            return {id(o.param) for o in occurrences if o.name.startswith(last + ".")}
        return {id(o.param) for o in occurrences if name_matches(o.name, spec)}

    def _excluded(self, occurrences: list[BaseParameter]) -> set[int]:
        spec = self.config.exclude_parameters
        return {id(o.param) for o in occurrences if spec is not None and name_matches(o.name, spec)}

    def _what(self) -> str:
        return f"target_parameters={self.config.target_parameters!r}"

    # -- injection -----------------------------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        occurrences = list(iter_base_parameters(model))
        chosen = self._selected(model, occurrences) - self._excluded(occurrences)
        floating = {id(o.param) for o in occurrences if o.param.is_floating_point()}
        chosen &= floating
        if not chosen:
            raise ValueError(f"{self._what()} selected no floating-point parameter of the model")
        on_root = [o.name for o in occurrences if id(o.param) in chosen and not o.module_name]
        if on_root:
            raise ValueError(f"parameter '{on_root[0]}' belongs to the model itself, which cannot be wrapped")
        sites = {s.name: s for s in iter_sites(model)}
        deltas: dict[int, nn.Parameter] = {}
        for occ in occurrences:
            if id(occ.param) in chosen and id(occ.param) not in deltas:
                deltas[id(occ.param)] = nn.Parameter(torch.zeros_like(occ.param, requires_grad=True))
        # Inner modules first: wrapping a module changes the paths of everything inside it.
        for occ in sorted(occurrences, key=lambda o: -o.module_name.count(".")):
            if id(occ.param) not in chosen:
                continue
            layer, relative = self._layer_for(model, sites, occ)
            layer.add_delta(self.adapter_name, relative, deltas[id(occ.param)])

    def _layer_for(self, model: nn.Module, sites: dict, occ: BaseParameter) -> tuple[PartLayer, str]:
        """The ``PartLayer`` around the owner of ``occ`` (made if needed) and the name under it."""
        attr = occ.name.rpartition(".")[2]
        site = sites[occ.module_name]
        module = site.module  # a PartLayer already made for another parameter may sit under wrappers
        while isinstance(module, WrapperLayer) and not isinstance(module, PartLayer):
            module = module.base_layer
        if isinstance(module, PartLayer):
            layer = module
        else:
            layer = PartLayer(site.module)
            set_module(model, site.path, layer)
            sites[occ.module_name] = type(site)(site.name, site.path, layer)
        # The owner sits below the PartLayer, under the wrappers (LoRA, ...) it may hold.
        inner, hops = layer.base_layer, 0
        while inner is not occ.owner:
            inner, hops = inner.base_layer, hops + 1
        return layer, "base_layer." * hops + attr

    def layers(self, model: nn.Module) -> Iterator[tuple[str, str, PartLayer]]:
        """``(logical name, path, layer)`` of the layers holding this adapter."""
        for name, path, layer in wrapper_sites(model, PartLayer):
            if self.adapter_name in layer.part_delta:
                yield name, path, layer  # type: ignore[misc]

    def _deltas(self, model: nn.Module) -> dict[str, tuple[nn.Parameter, nn.Parameter, str]]:
        """``{logical parameter name: (delta, base parameter, module name)}``, one entry per delta."""
        out: dict[str, tuple[nn.Parameter, nn.Parameter, str]] = {}
        seen: set[int] = set()
        for name, _, layer in self.layers(model):
            for rel, delta in layer.deltas(self.adapter_name).items():
                if id(delta) not in seen:
                    seen.add(id(delta))
                    out[f"{name}.{rel.rpartition('.')[2]}"] = (delta, layer.base_parameter(rel), name)
        return out

    # -- parameters and state ------------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        seen: set[int] = set()
        for _, path, layer in self.layers(model):
            for key, p in layer.part_delta[self.adapter_name].items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield f"{path}.part_delta.{self.adapter_name}.{key}", p

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: delta.detach() for name, (delta, _, _) in self._deltas(model).items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        targets = {name: (delta, module) for name, (delta, _, module) in self._deltas(model).items()}
        load_checked(targets, state_dict, self.adapter_name)

    # -- merging --------------------------------------------------------------------------------------------
    def _fold(self, model: nn.Module, sign: int) -> None:
        with torch.no_grad():
            for delta, base, _ in self._deltas(model).values():
                base.add_(delta.to(base.dtype), alpha=sign)
        for _, _, layer in self.layers(model):
            layer.set_merged(self.adapter_name, sign > 0)

    def merge(self, model: nn.Module) -> None:
        self._fold(model, +1)

    def unmerge(self, model: nn.Module) -> None:
        self._fold(model, -1)


class BitFit(Part):
    name = "bitfit"
    description = "BitFit: train only the biases (optionally the norms), as per-adapter deltas"
    config_class = BitFitConfig  # type: ignore[assignment]
    default_targets_need_transformers = False
    #: A few thousand biases (or only the norms, on bias-free models) learn, but do not halve the
    #: loss of the suite's random batch in 30 steps; tests/test_tuner_part.py checks the loss falls.
    memorises = False

    config: BitFitConfig  # type: ignore[assignment]

    def _selected(self, model: nn.Module, occurrences: list[BaseParameter]) -> set[int]:
        biases = {id(o.param) for o in occurrences if o.name.rpartition(".")[2] == "bias"}
        norms = self.config.norms
        if norms == "auto":
            norms = not biases
        if norms:
            biases |= {id(o.param) for o in occurrences if is_norm(o.owner)}
        return biases

    def _what(self) -> str:
        return f"bitfit (biases, norms={self.config.norms!r})"
