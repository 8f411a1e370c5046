"""swiftune: a plugin-based registry of parameter-efficient tuners, PEFT-compatible on disk.

Public names are imported lazily so that ``import swiftune`` (and ``swiftune --help``) stay fast
and do not import torch; plugins are discovered on first registry access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl
from .hub_kernels import keep_hub_kernels_off

keep_hub_kernels_off()  # before anything imports bitsandbytes or transformers

__version__ = "0.1.0"

_LAZY = {
    "Swift": "api",
    "SwiftModel": "swift_model",
    "ParameterSummary": "swift_model",
    "Tuner": "tuner",
    "TunerConfig": "config",
    "parse_config": "config_dispatch",
    "DatasetAdapter": "dataset",
    "DatasetEntry": "dataset",
    "ChatTemplate": "template",
    "ModelFamily": "model_family",
    "load_datasets": "data",
    "WrapperLayer": "layers",
    "cast_frozen_linears": "frozen_weights",
    "linear_cross_entropy": "fused_loss",
    "loraplus_param_groups": "loraplus",
    "registries": None,
    "errors": None,
    "module_utils": None,
    "serialization": None,
    "SwiftuneError": "errors",
    "ConfigError": "errors",
    "AdapterLoadError": "errors",
    "NotMergeableError": "errors",
    "UnknownNameError": "errors",
    "DuplicateNameError": "errors",
    "PluginError": "errors",
    "sft": "recipes.calls",
    "infer": "recipes.calls",
    "export": "recipes.calls",
    "rlhf": "recipes.calls",
    "deploy": "recipes.calls",
    "evaluate": "recipes.calls",
}

__all__ = ["hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'swiftune' has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from . import errors, module_utils, registries, serialization
    from .api import Swift
    from .config import TunerConfig
    from .config_dispatch import parse_config
    from .dataset import DatasetAdapter
    from .errors import (
        AdapterLoadError,
        ConfigError,
        DuplicateNameError,
        NotMergeableError,
        PluginError,
        SwiftuneError,
        UnknownNameError,
    )
    from .frozen_weights import cast_frozen_linears
    from .fused_loss import linear_cross_entropy
    from .layers import WrapperLayer
    from .model_family import ModelFamily
    from .swift_model import ParameterSummary, SwiftModel
    from .recipes.calls import deploy, evaluate, export, infer, rlhf, sft
    from .tuner import Tuner
