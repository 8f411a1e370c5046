"""Adapter folders on disk: ``adapter_config.json`` + ``adapter_model.safetensors``.

Weights are safetensors only: pickle files can run code when loaded, so they are refused.
Files are written to a temporary name and renamed, so a crash never leaves a half-written adapter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file

from .errors import AdapterLoadError, ConfigError
from .files import atomic_write, naming_file

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_NAMES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth", "pytorch_model.bin")
DEFAULT_ADAPTER = "default"

_ADAPTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_adapter_name(name: Any) -> str:
    """Adapter names become folder names, so only plain identifiers are accepted."""
    if not isinstance(name, str) or not _ADAPTER_NAME.match(name):
        raise ConfigError(
            f"invalid adapter name {name!r}: use a plain identifier (letters, digits, '_'; "
            "not starting with a digit), because it becomes a folder name"
        )
    return name


def adapter_dir(root: str | Path, adapter_name: str) -> Path:
    """PEFT's layout: the adapter named 'default' at the root, any other in a subfolder."""
    root = Path(root)
    return root if adapter_name == DEFAULT_ADAPTER else root / check_adapter_name(adapter_name)


def adapter_folders(
    path: str | Path,
    adapter_name: str | None = None,
    subfolder: str | None = None,
    adapter_names: Sequence[str] | None = None,
) -> list[tuple[str, Path]]:
    """The adapters ``Swift.from_pretrained`` loads from ``path``: ``[(name, folder), ...]``.

    A folder's own adapter only. Its subfolders may hold other adapters (PEFT's layout for several
    adapters, or an adapter someone kept next to another); loading and activating those too
    silently changed the outputs (NaN logits in one report), so they are loaded only when asked
    for: ``subfolder="chat"`` loads that one (named ``adapter_name`` or after the folder), and
    ``adapter_names=["default", "chat"]`` loads several in ``save_pretrained``'s layout ('default'
    at the root, any other in a subfolder named after it).
    """
    path = Path(path)
    if adapter_names is not None:
        if adapter_name is not None or subfolder is not None:
            raise ConfigError("adapter_names: give it alone (each name picks its own folder), not with adapter_name / subfolder")
        names = [check_adapter_name(n) for n in ([adapter_names] if isinstance(adapter_names, str) else adapter_names)]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"adapter_names: expected distinct adapter names, got {names}")
        found = [(n, adapter_dir(path, n)) for n in names]
        missing = [f"'{n}' ({f / CONFIG_NAME})" for n, f in found if not (f / CONFIG_NAME).is_file()]
        if missing:
            raise AdapterLoadError(f"{path}: no adapter {', '.join(missing)}; it holds {_describe_adapters(path)}")
        return found
    folder = path / subfolder if subfolder is not None else path
    if (folder / CONFIG_NAME).is_file():
        if adapter_name is None and subfolder is not None:
            name = Path(subfolder).name
            if not _ADAPTER_NAME.match(name):
                raise ConfigError(f"subfolder '{subfolder}' is not an adapter name: pass adapter_name= as well")
        else:
            name = DEFAULT_ADAPTER if adapter_name is None else adapter_name
        return [(check_adapter_name(name), folder)]
    subs = _adapter_subfolders(folder)
    if subs:
        raise AdapterLoadError(
            f"{folder}: no {CONFIG_NAME} here, only in its subfolders {', '.join(subs)}; subfolder adapters are "
            f"loaded only when asked for: subfolder='{subs[0]}' for one, adapter_names=[...] for several "
            f"(or pass {folder / subs[0]} as the path)"
        )
    raise AdapterLoadError(f"{folder}: no {CONFIG_NAME} found; is this an adapter folder?")


def _adapter_subfolders(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())


def _describe_adapters(path: Path) -> str:
    here = ["'default' (the root)"] if (path / CONFIG_NAME).is_file() else []
    subs = [f"'{s}'" for s in _adapter_subfolders(path)]
    return "adapters " + ", ".join(here + subs) if here or subs else "no adapter"


def write_weights_file(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """One safetensors file, written atomically (tied tensors are stored as copies)."""
    contiguous: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in tensors.items():
        v = v.detach().contiguous().cpu()
        # safetensors refuses tensors sharing memory (tied weights inside a saved module): copy repeats.
        storage = v.untyped_storage().data_ptr()
        contiguous[k] = v.clone() if storage in seen else v
        seen.add(storage)
    atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata={"format": "pt"}))


def write_adapter_config(folder: Path, config: Mapping[str, Any]) -> None:
    """Written after the weights: a folder with a config is a complete adapter."""
    text = json.dumps(dict(config), indent=2, sort_keys=True)
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text))


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    """The folder's ``adapter_config.json``, with ``tuner`` filled in where the file leaves it to its
    ``peft_type`` (``swiftune.peft_quiet``)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise AdapterLoadError(f"{folder}: no {CONFIG_NAME} found; is this an adapter folder?")
    with naming_file(path, "read", AdapterLoadError):
        data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise AdapterLoadError(f"{path}: expected a JSON object")
    from .peft_quiet import with_implied_tuner

    return with_implied_tuner(data)


def read_adapter_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    folder = Path(folder)
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        pickles = [n for n in PICKLE_NAMES if (folder / n).exists()]
        if pickles:
            raise AdapterLoadError(
                f"{folder / pickles[0]}: refusing to load a pickle file; swiftune loads weights from "
                f"safetensors only, because unpickling can run arbitrary code. Convert it once, in a "
                f"process you trust, to {WEIGHTS_NAME}."
            )
        raise AdapterLoadError(f"{folder}: no {WEIGHTS_NAME} found")
    return read_weights_file(path)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a damaged or unreadable file is an error naming it."""
    with naming_file(path, "read safetensors weights", AdapterLoadError):
        return load_file(str(path))


def check_tensor(dest: torch.Tensor, state: Mapping[str, torch.Tensor], key: str, module: str) -> torch.Tensor:
    """``state[key]`` if it fits ``dest``; errors name the module and both shapes."""
    if key not in state:
        raise AdapterLoadError(f"missing key '{key}' for module '{module}' in the adapter weights")
    src = state[key]
    if tuple(src.shape) != tuple(dest.shape):
        raise AdapterLoadError(
            f"shape mismatch for module '{module}' (key '{key}'): the adapter file has "
            f"{tuple(src.shape)}, the model expects {tuple(dest.shape)} (another rank or another base model?)"
        )
    return src


def copy_checked(dest: torch.Tensor, state: Mapping[str, torch.Tensor], key: str, module: str) -> None:
    """Copy ``state[key]`` into ``dest``, with errors that name the module and both shapes."""
    src = check_tensor(dest, state, key, module)
    with torch.no_grad():
        dest.copy_(src.to(dtype=dest.dtype, device=dest.device))


def check_no_unexpected(state: Mapping[str, torch.Tensor], used: set[str], adapter: str) -> None:
    extra = sorted(set(state) - used)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise AdapterLoadError(
            f"adapter '{adapter}': unexpected keys in the weights file that match no module of the "
            f"model: {shown} (another base model or another target_modules?)"
        )


def load_checked(
    targets: Mapping[str, tuple[torch.Tensor, str]], state: Mapping[str, torch.Tensor], adapter: str
) -> None:
    """Strict load of ``state`` into ``{key: (destination, module name)}``.

    Every key, shape and leftover is checked before the first copy, so a failed load changes no
    tensor (some destinations are base weights, e.g. trained biases, which a rollback cannot undo).
    """
    checked = [(dest, check_tensor(dest, state, key, module)) for key, (dest, module) in targets.items()]
    check_no_unexpected(state, set(targets), adapter)
    with torch.no_grad():
        for dest, src in checked:
            dest.copy_(src.to(dtype=dest.dtype, device=dest.device))
