"""Rebuild base model, tokenizer, template and adapters from an sft run (for infer and export).

An adapter argument may be an sft output folder (its ``final/`` adapter is used), a checkpoint
folder or any adapter folder; the run's ``args.json`` (in that folder or its parent) names the base
model and the template, so ``swiftune infer --adapter output/run`` needs nothing else. A checkpoint
folder written by ms-swift works the same way (``ms_swift.py`` reads its ``args.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..serialization import CONFIG_NAME, check_adapter_name
from . import ms_swift
from .run_folder import ARGS_NAME, FINAL_NAME  # the run folder's layout, named once



@dataclass
class Rebuilt:
    model: Any  # a SwiftModel with adapters, or the plain base model
    tokenizer: Any
    template: Any
    base: str
    adapters: dict[str, Path] = field(default_factory=dict)
    run_args: dict[str, Any] = field(default_factory=dict)


def locate_adapter(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(adapter folder, the run's args.json or {}) for an sft output, checkpoint or adapter folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"--adapter: {path}: no such folder")
    folder = path
    if not (path / CONFIG_NAME).is_file() and (path / FINAL_NAME / CONFIG_NAME).is_file():
        folder = path / FINAL_NAME
    if not (folder / CONFIG_NAME).is_file():
        if (path / ARGS_NAME).is_file():
            ms_swift.check_adapter_folder(path, _read_args(path / ARGS_NAME))
        raise ConfigError(f"--adapter: {path}: no {CONFIG_NAME} there (nor in {FINAL_NAME}/); is it an adapter or sft output folder?")
    for candidate in (folder / ARGS_NAME, folder.parent / ARGS_NAME):
        if candidate.is_file():
            return folder, ms_swift.read_run_args(_read_args(candidate), candidate)
    return folder, {}


def _read_args(path: Path) -> dict[str, Any]:
    """A run's args.json (swiftune's or ms-swift's)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of training arguments")
    return data


def _base_of(folder: Path, run_args: dict[str, Any]) -> str | None:
    if run_args.get("model"):
        return str(run_args["model"])
    try:
        return json.loads((folder / CONFIG_NAME).read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError):
        return None


def _names(folders: Sequence[Path]) -> list[str]:
    """'default' for one adapter; else the folder names when they are distinct identifiers."""
    if len(folders) == 1:
        return ["default"]
    names = [f.name if f.name != FINAL_NAME else f.parent.name for f in folders]
    try:
        if len(set(names)) == len(names):
            return [check_adapter_name(n) for n in names]
    except ConfigError:
        pass
    return [f"adapter_{i}" for i in range(len(folders))]


def rebuild(adapters: Sequence[str], model: str | None = None, template: str | None = None,
            dtype: Any = None, trust_remote_code: bool | None = None) -> Rebuilt:
    """Load the base model and put the adapters on it (all active), ready for generate / merge.

    ``trust_remote_code`` is the user's permission only (None: ``SWIFTUNE_TRUST_REMOTE_CODE``): a
    base model named by an adapter's files never runs its code on the adapter's say-so."""
    from ..api import Swift
    from ..loading.remote_code import RemoteCodeError
    from . import bridge

    located = [locate_adapter(a) for a in adapters]
    run_args = located[0][1] if located else {}
    if run_args.get("task") == "text-to-image":  # a diffusers pipeline, not a transformers model
        raise ConfigError(f"--adapter: {located[0][0]} was trained with --task text-to-image; draw with "
                          "swiftune infer --task text-to-image --prompt ... --output image.png (docs/diffusion.md)")
    base = model or (_base_of(*located[0]) if located else None)
    if not base:
        where = f" ({located[0][0]} has no args.json nor base_model_name_or_path)" if located else ""
        raise ConfigError(f"--model: required{where}")
    bases = {_base_of(*loc) for loc in located[1:]} - {None, base}
    if bases and model is None:
        raise ConfigError(f"--adapter: the adapters were trained on different base models ({base}, {', '.join(sorted(bases))}); pass --model")

    try:
        base_model, tokenizer = bridge.load_model_and_tokenizer(base, dtype=dtype, trust_remote_code=trust_remote_code)
    except RemoteCodeError as exc:
        if model is not None or not located:
            raise
        raise RemoteCodeError(f"--adapter {located[0][0]} names its base model: {exc}") from None
    base_model.eval()
    chosen = bridge.resolve_template(template or run_args.get("template"), base_model, tokenizer)
    built = base_model
    folders = {}
    for name, (folder, _) in zip(_names([f for f, _ in located]), located):
        built = Swift.from_pretrained(built, folder, adapter_name=name)
        folders[name] = folder
    if folders:
        built.set_active_adapters(list(folders))
        built.eval()
    return Rebuilt(model=built, tokenizer=tokenizer, template=chosen, base=base, adapters=folders, run_args=run_args)
