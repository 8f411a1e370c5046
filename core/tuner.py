"""The ``Tuner`` interface: what a plugin implements to add a fine-tuning method.

One ``Tuner`` instance is one named adapter on one model. ``SwiftModel`` drives it through the
methods below and never looks at the tuner's name: behaviour differences are declared through the
capability flags, which the conformance suite (``swiftune.testing``) reads as well.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from .config import TunerConfig
from .errors import NotMergeableError
from .serialization import WEIGHTS_NAME, read_adapter_weights, write_weights_file


@dataclass(frozen=True)
class Capabilities:
    """The capability flags of one adapter (their meaning: the class attributes of ``Tuner``)."""

    mergeable: bool
    identity_at_init: bool
    prompt_learning: bool
    trains_base_parameters: bool
    needs_transformers_model: bool
    peft_compatible: bool
    typical_learning_rate: float
    default_targets_need_transformers: bool
    memorises: bool
    calls_frozen_linears_only: bool
    adapters_add_up: bool

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of_class(cls, tuner_cls: type["Tuner"]) -> "Capabilities":
        """The flags declared as class attributes (a flag defined as a property reads the base default)."""
        values = {}
        for name in cls.names():
            value = getattr(tuner_cls, name)
            values[name] = getattr(Tuner, name) if isinstance(value, property) else value
        return cls(**values)

    def replace(self, **changes: Any) -> "Capabilities":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Tuner:
    """Base class of every tuner. Subclasses set ``name`` and ``config_class``.

    Capability flags are class attributes (the defaults). A tuner whose behaviour depends on its
    config (LoRA's ``bias`` trains base biases) overrides ``capabilities(config)``; each instance
    holds the answer for its own config, so ``tuner.trains_base_parameters`` is per adapter.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[TunerConfig]]

    # -- capability flags (read by SwiftModel and the conformance suite) ---------------------
    #: ``merge`` / ``unmerge`` fold the adapter into the base weights exactly.
    mergeable: ClassVar[bool] = False
    #: A freshly injected adapter leaves the model's outputs unchanged.
    identity_at_init: ClassVar[bool] = True
    #: The adapter changes the input sequence (virtual tokens, prefixes).
    prompt_learning: ClassVar[bool] = False
    #: Training updates existing base parameters (full fine-tuning; LoRA with ``bias`` other than
    #: "none"). ``part`` / ``bitfit`` do not: they train per-adapter deltas beside the frozen base.
    trains_base_parameters: ClassVar[bool] = False
    #: Needs a transformers ``PreTrainedModel`` (config, embeddings, cache), not any nn.Module.
    needs_transformers_model: ClassVar[bool] = False
    #: Files written by ``save`` load in ``peft.PeftModel.from_pretrained``.
    peft_compatible: ClassVar[bool] = False
    #: A learning rate at which this method learns on small models: methods with few parameters
    #: (prompts, prefixes) need far more than LoRA. The conformance suite's memorise check uses it.
    typical_learning_rate: ClassVar[float] = 1e-2
    #: The default config finds its targets through transformers structure (blocks, attention /
    #: MLP projections, output embeddings); a plain ``nn.Module`` needs explicit targets.
    default_targets_need_transformers: ClassVar[bool] = False
    #: The adapter can fit one small batch (the conformance suite's ``memorise`` check, trained at
    #: ``typical_learning_rate``). False for methods with a handful of parameters per layer (IA³'s
    #: scaling vectors, BitFit): they learn, but no single rate halves the loss in the check's steps
    #: on every tiny model; such a tuner proves learning in its own tests.
    memorises: ClassVar[bool] = True
    #: The tuner only *calls* the frozen base ``nn.Linear`` layers it touches (it never does other
    #: arithmetic with their weights), so a training run under autocast may store those layers in
    #: the autocast dtype (``swiftune.cast_frozen_linears``) and get the same outputs and gradients.
    calls_frozen_linears_only: ClassVar[bool] = False
    #: Adapters of this tuner active together apply the sum of their own updates, whatever else is
    #: active or merged, so merging them one at a time keeps the logits (LoRA; DoRA as swiftune
    #: defines it). False for a method whose update depends on the others (e.g. a DoRA that rescales
    #: the merged weight): the conformance suite's ``merge_two`` check is skipped, and the tuner
    #: should refuse to merge while another of its adapters is active or merged.
    adapters_add_up: ClassVar[bool] = True

    # -- roles among the installed tuners (read by ``swiftune.plugin_defaults``, not capabilities) --
    #: The tuner ``swiftune sft`` uses when none is named.
    default_of_kind: ClassVar[bool] = False
    #: Loads PEFT configs that no tuner claims by ``peft_type`` (and ``peft.PeftConfig`` objects).
    peft_fallback: ClassVar[bool] = False

    def __init__(self, adapter_name: str, config: TunerConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{self.name}: expected {self.config_class.__name__}, got {type(config).__name__}")
        self.adapter_name = adapter_name
        self.config = config
        for flag, value in type(self).capabilities(config).as_dict().items():
            if not isinstance(inspect.getattr_static(type(self), flag, None), property):  # a property decides itself
                setattr(self, flag, value)
        #: True while ``SwiftModel`` injects this adapter only to load saved weights into it:
        #: ``inject`` may then skip initialisation that reads outside data (e.g. a tokenizer).
        self.loading = False

    @classmethod
    def capabilities(cls, config: TunerConfig) -> Capabilities:
        """The flags of an adapter with ``config``. Default: the class attributes; override when the
        config changes one (``return super().capabilities(config).replace(flag=...)``)."""
        return Capabilities.of_class(cls)

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Transform the base model before injection (e.g. quantize for QLoRA). Default: as is."""
        return model

    def inject(self, model: nn.Module) -> None:
        """Add this adapter's modules / hooks to ``model``. Must raise if nothing was targeted."""
        raise NotImplementedError

    def set_active(self, model: nn.Module, active: bool) -> None:
        """Switch this adapter on or off without removing it."""
        raise NotImplementedError

    def remove(self, model: nn.Module) -> None:
        """Delete this adapter's modules, restoring the plain base where nothing else is left."""
        raise NotImplementedError

    # -- parameters and state ------------------------------------------------------------------
    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        """Parameters that training this adapter updates (``model``-relative names)."""
        raise NotImplementedError

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The adapter's tensors under their on-disk key names (PEFT's when peft_compatible)."""
        raise NotImplementedError

    def write_weights(self, model: nn.Module, folder: Path) -> None:
        """Write the weight file(s) into ``folder`` (default: ``state_dict`` as adapter_model.safetensors).
        The config is written after this returns, so a folder with a config is complete."""
        write_weights_file(folder / WEIGHTS_NAME, self.state_dict(model))

    def read_weights(self, folder: Path) -> dict[str, torch.Tensor]:
        """Read what ``write_weights`` wrote (safetensors only)."""
        return read_adapter_weights(folder)

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        """Load tensors from ``state_dict`` strictly: missing, unexpected or misshapen keys raise
        ``AdapterLoadError`` naming the module and both shapes."""
        raise NotImplementedError

    # -- merging -------------------------------------------------------------------------------
    def merge(self, model: nn.Module) -> None:
        raise NotMergeableError(f"tuner '{self.name}' (adapter '{self.adapter_name}') cannot be merged into the base weights")

    def unmerge(self, model: nn.Module) -> None:
        raise NotMergeableError(f"tuner '{self.name}' (adapter '{self.adapter_name}') cannot be merged into the base weights")

    # -- forward-time input transformation (prompt-learning tuners) ----------------------------
    def transform_inputs(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Rewrite the forward / generate keyword arguments. Default: unchanged."""
        return kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(adapter={self.adapter_name!r}, config={self.config!r})"
