"""The ``full`` tuner: full-parameter fine-tuning through the same API, Trainer and CLI.

Nothing is injected: the adapter *is* the base model's own parameters, trained in place. What that
means for the adapter operations, each stated by a flag or in the docs:

* ``trains_base_parameters``: there is no separate frozen base. ``disable_adapters()`` and
  deactivating change nothing in the outputs (a warning says so); deactivating stops training.
* ``mergeable``: the trained weights already are the model's, so merging is a no-op and
  ``merge_and_unload()`` (hence ``swiftune export``) returns the fine-tuned plain model.
* One ``full`` adapter per model: a second would train the very same tensors.
* Saved: ``adapter_model.safetensors`` with every base parameter under its plain transformers
  state-dict key (tied weights once), loaded back by copying into a fresh base.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Iterator

import torch
from torch import nn

from swiftune.module_utils import name_matches
from swiftune.serialization import load_checked
from swiftune.tuner import Tuner
from swiftune.tuners.part.params import BaseParameter, base_parameters

from .config import FullConfig

#: model -> name of its full adapter (a plain mapping would keep dropped models alive).
_OWNERS: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


class Full(Tuner):
    name = "full"
    description = "full-parameter fine-tuning through the same API and CLI"
    config_class = FullConfig
    mergeable = True
    identity_at_init = True
    trains_base_parameters = True

    config: FullConfig

    def __init__(self, adapter_name: str, config: FullConfig) -> None:
        super().__init__(adapter_name, config)
        self._active = False

    def inject(self, model: nn.Module) -> None:
        owner = _OWNERS.get(model)
        if owner is not None:
            raise ValueError(
                f"the model already has the full adapter '{owner}'; a second one would train the same "
                "parameters (delete it first)"
            )
        if not any(p.is_floating_point() for p in self._trained(model).values()):
            raise ValueError(f"freeze_parameters={self.config.freeze_parameters!r} leaves no parameter to train")
        _OWNERS[model] = self.adapter_name

    def set_active(self, model: nn.Module, active: bool) -> None:
        if self._active and not active:
            warnings.warn(
                f"full adapter '{self.adapter_name}' was deactivated or disabled: full fine-tuning trains the "
                "model's own weights, so the outputs stay the fine-tuned ones",
                stacklevel=4,
            )
        self._active = active

    def remove(self, model: nn.Module) -> None:
        """Nothing to take out: the trained weights stay in the model."""
        if _OWNERS.get(model) == self.adapter_name:
            del _OWNERS[model]

    # -- parameters and state ---------------------------------------------------------------------------
    def _all(self, model: nn.Module) -> dict[str, BaseParameter]:
        return base_parameters(model)

    def _trained(self, model: nn.Module) -> dict[str, nn.Parameter]:
        spec = self.config.freeze_parameters
        return {
            bp.path: bp.param
            for name, bp in self._all(model).items()
            if bp.param.is_floating_point() and not (spec is not None and name_matches(name, spec))
        }

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        yield from self._trained(model).items()

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: bp.param.detach() for name, bp in self._all(model).items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        targets = {name: (bp.param, bp.module_name) for name, bp in self._all(model).items()}
        load_checked(targets, state_dict, self.adapter_name)

    # -- merging: the weights are the model's already ------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        pass

    def unmerge(self, model: nn.Module) -> None:
        pass
