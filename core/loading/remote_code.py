"""Code shipped with a checkpoint runs only when the user asked for it.

A model folder whose ``config.json`` (or ``tokenizer_config.json``) has an ``auto_map`` naming its
own ``configuration_*.py`` / ``modeling_*.py`` / ``tokenization_*.py`` would have transformers import
those files with ``trust_remote_code=True``. swiftune passes True only when the user did:
``--trust-remote-code`` on any command, ``trust_remote_code=True`` in Python, or
``SWIFTUNE_TRUST_REMOTE_CODE=1``. A model family that needs remote code no longer switches it on;
without permission loading stops with an error naming the folder, the files and the flag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

#: Set to 1 to allow code shipped with checkpoints everywhere (as --trust-remote-code does).
TRUST_ENV = "SWIFTUNE_TRUST_REMOTE_CODE"
_TRUE = {"1", "true", "yes", "on"}
_CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


class RemoteCodeError(ModelLoadError):
    """Loading would run Python code from the checkpoint and the user has not allowed it."""


def trust_remote_code(explicit: bool | None = None) -> bool:
    """The user's permission: an explicit True / False wins, else ``SWIFTUNE_TRUST_REMOTE_CODE``."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(TRUST_ENV, "").strip().lower() in _TRUE


def _module_files(reference: Any) -> list[str]:
    """``configuration_x.XConfig`` or ``org/repo--modeling_x.X`` (or a list of them) -> module files."""
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    files = []
    for ref in refs:
        if not isinstance(ref, str) or "." not in ref:
            continue
        repo, _, dotted = ref.rpartition("--")
        module = dotted.rsplit(".", 1)[0].replace(".", "/") + ".py"
        files.append(f"{repo}:{module}" if repo else module)
    return files


def _auto_map_files(folder: Path) -> dict[str, list[str]]:
    """{config file name: the module files its ``auto_map`` names} for the configs ``folder`` has."""
    found: dict[str, list[str]] = {}
    for name in _CONFIG_FILES:
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if isinstance(auto_map, dict):
            files = [f for ref in auto_map.values() for f in _module_files(ref)]
            if files:
                found[name] = list(dict.fromkeys(files))
    return found


def remote_code_files(folder: str | Path) -> list[str]:
    """The Python files loading ``folder`` with ``trust_remote_code=True`` would run (from ``auto_map``)."""
    return list(dict.fromkeys(f for files in _auto_map_files(Path(folder)).values() for f in files))


def _native_without_code(folder: Path, config_name: str) -> bool:
    """transformers can load what ``config_name`` describes with its own classes (its ``auto_map``
    is then ignored without trust): a known ``model_type``, or a ``tokenizer_class`` / processor
    class that transformers has."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        data = json.loads((folder / config_name).read_text())
    except (OSError, ValueError):
        return False
    if config_name == "config.json":
        return bool(data.get("model_type")) and data["model_type"] in CONFIG_MAPPING
    cls = data.get("tokenizer_class") or data.get("image_processor_type") or data.get("processor_class")
    return isinstance(cls, str) and (hasattr(transformers, cls) or hasattr(transformers, cls.removesuffix("Fast")))


def check_remote_code(folder: str | Path, trusted: bool, *, family: Any = None, name: str | None = None) -> None:
    """Raise ``RemoteCodeError`` when ``folder`` can only be loaded by running its own code and
    the user has not allowed it (``family``: the model family, which may say it needs remote code)."""
    if trusted:
        return
    folder = Path(folder)
    family_needs = bool(getattr(family, "trust_remote_code", False))
    by_config = _auto_map_files(folder)
    if not family_needs:  # only the files transformers cannot do without
        by_config = {c: f for c, f in by_config.items() if not _native_without_code(folder, c)}
    files = list(dict.fromkeys(f for names in by_config.values() for f in names))
    if not files and not family_needs:
        return
    shown = f"{name} ({folder})" if name and name != str(folder) else str(folder)
    what = f"its Python files {', '.join(files)} (auto_map in its config)" if files else "Python code from its hub repository"
    needs = f"; model family '{family.name}' needs remote code" if family_needs else ""
    raise RemoteCodeError(
        f"{shown}: loading this model would run {what}{needs}. swiftune runs code shipped with a "
        f"checkpoint only when asked: read those files, then pass --trust-remote-code "
        f"(trust_remote_code=True in Python, or set {TRUST_ENV}=1)"
    )
