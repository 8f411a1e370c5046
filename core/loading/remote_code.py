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


def remote_code_files(folder: str | Path) -> list[str]:
    """The Python files loading ``folder`` with ``trust_remote_code=True`` would run (from ``auto_map``)."""
    folder = Path(folder)
    found: list[str] = []
    for name in _CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if isinstance(auto_map, dict):
            for reference in auto_map.values():
                found += [f for f in _module_files(reference) if f not in found]
    return found


def _natively_supported(folder: Path) -> bool:
    """transformers has the config's ``model_type`` itself (auto_map is then ignored without trust)."""
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return bool(model_type) and model_type in CONFIG_MAPPING


def check_remote_code(folder: str | Path, trusted: bool, *, family: Any = None, name: str | None = None) -> None:
    """Raise ``RemoteCodeError`` when ``folder`` can only be loaded by running its own code and
    the user has not allowed it (``family``: the model family, which may say it needs remote code)."""
    if trusted:
        return
    folder = Path(folder)
    files = remote_code_files(folder)
    family_needs = bool(getattr(family, "trust_remote_code", False))
    if not files and not family_needs:
        return
    if files and not family_needs and _natively_supported(folder):
        return  # transformers loads it with its own classes; the shipped files are not run
    shown = f"{name} ({folder})" if name and name != str(folder) else str(folder)
    what = f"its Python files {', '.join(files)} (auto_map in its config)" if files else "Python code from its hub repository"
    needs = f"; model family '{family.name}' needs remote code" if family_needs else ""
    raise RemoteCodeError(
        f"{shown}: loading this model would run {what}{needs}. swiftune runs code shipped with a "
        f"checkpoint only when asked: read those files, then pass --trust-remote-code "
        f"(trust_remote_code=True in Python, or set {TRUST_ENV}=1)"
    )
