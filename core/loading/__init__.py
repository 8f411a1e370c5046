"""Model loaders and model families.

    from swiftune.loading import load_model, family_for
    model, tokenizer = load_model("smollm2-135m-instruct")        # the embedded default
    model, tokenizer = load_model("ms::qwen/Qwen2.5-0.5B-Instruct") # ModelScope
    family = family_for(model)                                     # -> the 'smollm2' ModelFamily
    family.default_target_modules                                  # q_proj ... down_proj

Names load lazily so ``import swiftune.loading`` stays free of torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "load_model": "load",
    "load_folder": "load",
    "resolve": "load",
    "Source": "load",
    "DEFAULT_MODEL": "load",
    "family_for": "families",
    "GENERIC": "families",
    "cache_root": "cache",
    "CACHE_ENV": "cache",
    "convert_gguf": "gguf",
    "ensure_converted": "packaged",
    "find_packaged": "packaged",
    "ModelLoadError": "errors",
    "OfflineError": "errors",
    "MissingPackageError": "errors",
    "RemoteCodeError": "remote_code",
    "remote_code_files": "remote_code",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'swiftune.loading' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .cache import CACHE_ENV, cache_root
    from .errors import MissingPackageError, ModelLoadError, OfflineError
    from .families import GENERIC, family_for
    from .gguf import convert_gguf
    from .load import DEFAULT_MODEL, Source, load_folder, load_model, resolve
    from .packaged import ensure_converted, find_packaged
    from .remote_code import RemoteCodeError, remote_code_files
