"""The ``full`` tuner: full-parameter fine-tuning through the same API, Trainer and CLI.

Nothing is injected: the adapter *is* the base model's own parameters, trained in place. What that
means for the adapter operations, each stated by a flag or in the docs:

* ``trains_base_parameters``: there is no separate frozen base. ``disable_adapters()`` and
  deactivating change nothing in the outputs (a warning says so); deactivating stops training.
* ``mergeable``: the trained weights already are the model's, so merging is a no-op and
  ``merge_and_unload()`` (hence ``swiftune export``) returns the fine-tuned plain model.
* One ``full`` adapter per model: a second would train the very same tensors.
* Saved as a transformers model in the adapter folder's ``model/`` subfolder: ``config.json`` +
  ``model.safetensors`` (sharded with ``model.safetensors.index.json`` past ``max_shard_size``),
  every base parameter under its plain state-dict key (tied weights once), so
  ``AutoModel*.from_pretrained(folder / "model")`` loads it as is. (Not in the adapter folder itself:
  transformers, seeing ``adapter_config.json`` there, would take the folder for a PEFT adapter.)
  swiftune loads it back by copying into a fresh base.
"""

from __future__ import annotations

import json
import warnings
import weakref
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from swiftune.module_utils import name_matches
from swiftune.errors import AdapterLoadError
from swiftune.files import atomic_write, read_json
from swiftune.serialization import load_checked, read_weights_file, write_weights_file
from swiftune.tuner import Tuner
from swiftune.tuners.part.params import BaseParameter, base_parameters

from .config import FullConfig

#: The adapter folder's subfolder holding the transformers model.
MODEL_SUBFOLDER = "model"
_SHARD_PATTERN = "model{suffix}.safetensors"  # transformers' names: model.safetensors, model-00001-of-00002...
_SINGLE_NAME = "model.safetensors"
_INDEX_NAME = "model.safetensors.index.json"

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

    def write_weights(self, model: nn.Module, folder: Path) -> None:
        """transformers' layout in ``folder/model``, a model plain ``from_pretrained`` loads."""
        from huggingface_hub import split_torch_state_dict_into_shards

        folder = folder / MODEL_SUBFOLDER
        folder.mkdir(exist_ok=True)
        tensors = self.state_dict(model)
        split = split_torch_state_dict_into_shards(tensors, filename_pattern=_SHARD_PATTERN,
                                                   max_shard_size=self.config.max_shard_size)
        for old in folder.glob("model*.safetensors*"):  # a previous save with other shards
            old.unlink()
        for filename, keys in split.filename_to_tensors.items():
            write_weights_file(folder / filename, {k: tensors[k] for k in keys})
        if split.is_sharded:
            index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                     "weight_map": split.tensor_to_filename}
            text = json.dumps(index, indent=2, sort_keys=True)
            atomic_write(folder / _INDEX_NAME, lambda tmp: Path(tmp).write_text(text))
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_json_file"):
            config.to_json_file(str(folder / "config.json"))

    def read_weights(self, folder: Path) -> dict[str, torch.Tensor]:
        folder = folder / MODEL_SUBFOLDER
        if (folder / _INDEX_NAME).is_file():
            files = sorted(set(read_json(folder / _INDEX_NAME, AdapterLoadError)["weight_map"].values()))
        elif (folder / _SINGLE_NAME).is_file():
            files = [_SINGLE_NAME]
        else:
            raise AdapterLoadError(f"{folder}: no {_SINGLE_NAME} or {_INDEX_NAME} for the full adapter")
        out: dict[str, torch.Tensor] = {}
        for name in files:
            out.update(read_weights_file(folder / name))
        return out

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        targets = {name: (bp.param, bp.module_name) for name, bp in self._all(model).items()}
        load_checked(targets, state_dict, self.adapter_name)

    # -- merging: the weights are the model's already ------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        pass

    def unmerge(self, model: nn.Module) -> None:
        pass
