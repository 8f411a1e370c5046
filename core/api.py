"""``Swift``: the two entry points of the Python API, ``prepare`` and ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .adapter_dtype import AdapterDtype
from .config_dispatch import is_multi_adapter_mapping
from .rollback import rollback_on_error
from .serialization import DEFAULT_ADAPTER, adapter_folders
from .swift_model import SwiftModel


class Swift:
    """Namespace of the public constructors of ``SwiftModel``."""

    @staticmethod
    def prepare(
        model: nn.Module, config: Any, adapter_name: str = DEFAULT_ADAPTER, *, adapter_dtype: AdapterDtype | torch.dtype = "auto"
    ) -> SwiftModel:
        """Freeze ``model`` and add adapters to it.

        ``config`` is a ``TunerConfig``, a dict with a ``tuner`` key, a ``peft.PeftConfig``, or
        ``{adapter_name: config, ...}`` for several adapters at once (all active).
        ``adapter_dtype``: dtype of the parameters the adapters add (``auto``: fp32 on a bf16 / fp16
        base, else the base's dtype; ``float32``, ``bfloat16``, ``float16``).

        All or nothing: if any adapter fails, ``model`` is left exactly as it was (not frozen either).
        """
        configs = dict(config) if is_multi_adapter_mapping(config) else {adapter_name: config}
        with rollback_on_error(model):
            swift = model if isinstance(model, SwiftModel) else SwiftModel(model)
            for name, cfg in configs.items():
                swift.add_adapter(name, cfg, adapter_dtype=adapter_dtype)
        return swift

    @staticmethod
    def from_pretrained(
        model: nn.Module, path: str | Path, adapter_name: str | None = None, *, subfolder: str | None = None,
        adapter_names: Sequence[str] | None = None, is_trainable: bool = False,
        adapter_dtype: AdapterDtype | torch.dtype = "auto",
    ) -> SwiftModel:
        """Load the adapter(s) at ``path`` (swiftune's or PEFT's files) onto ``model``.

        ``path`` holds the adapter, loaded as ``adapter_name`` (default 'default'). Adapters in its
        subfolders are loaded only when asked for: ``subfolder="chat"`` loads that one instead
        (named ``adapter_name`` or 'chat'), ``adapter_names=["default", "chat"]`` several, in
        ``save_pretrained``'s layout ('default' at the root, others in subfolders named after them).
        ``is_trainable=False``: the loaded adapters stay frozen through later activation changes
        (``SwiftModel.set_adapter_trainable`` changes it). All or nothing, as ``prepare``.
        """
        path = Path(path)
        with rollback_on_error(model):
            return Swift._load_all(model, path, adapter_name, is_trainable, adapter_dtype, subfolder, adapter_names)

    @staticmethod
    def _load_all(
        model: nn.Module, path: Path, adapter_name: str | None, is_trainable: bool, adapter_dtype: AdapterDtype | torch.dtype,
        subfolder: str | None = None, adapter_names: Sequence[str] | None = None,
    ) -> SwiftModel:
        swift = model if isinstance(model, SwiftModel) else SwiftModel(model)
        found = adapter_folders(path, adapter_name, subfolder, adapter_names)
        for name, folder in found:
            swift.load_adapter(folder, name, active=False, adapter_dtype=adapter_dtype, is_trainable=is_trainable)
        swift.set_active_adapters(_with_loaded(swift, [n for n, _ in found]))
        return swift


def _with_loaded(swift: SwiftModel, loaded: list[str]) -> list[str]:
    """The active adapters plus the loaded ones, but one prompt-learning adapter at most."""
    active = list(swift.active_adapters)
    skipped = []
    for name in loaded:
        if swift.tuners[name].prompt_learning and any(swift.tuners[n].prompt_learning for n in active):
            skipped.append(name)
        else:
            active.append(name)
    if skipped:
        import warnings

        warnings.warn(f"prompt-learning adapters {skipped} were loaded inactive: one can be active at a time", stacklevel=3)
    return active
