"""``--deepspeed zero2|zero3|...``: DeepSpeed configs shipped with swiftune, resolved by name.

ms-swift users pass ``--deepspeed zero2``; the same names work here. A preset is a JSON file in
``swiftune/recipes/ds_config/`` (package data) whose batch sizes, gradient accumulation and
clipping, precision and learning rate are ``"auto"``: the Trainer fills them from the run's own
flags. Any other value is a path to the user's own DeepSpeed JSON file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError

_FOLDER = "ds_config"


def deepspeed_presets() -> dict[str, Path]:
    """Preset name -> its JSON file (``zero2``, ``zero3``, ``zero2_offload``, ``zero3_offload``)."""
    folder = resources.files(__package__).joinpath(_FOLDER)
    return {entry.name[: -len(".json")]: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".json")}


def resolve_deepspeed(value: str | None) -> str | None:
    """The DeepSpeed config file for ``--deepspeed``: a preset's packaged file, or the given path."""
    if not value:
        return None
    presets = deepspeed_presets()
    if value in presets:
        return str(presets[value])
    path = Path(value).expanduser()
    if path.is_file():
        return str(path)
    names = ", ".join(sorted(presets))
    if path.suffix == ".json" or "/" in value:
        raise ConfigError(f"--deepspeed: config file {value} does not exist (or use a preset: {names})")
    raise ConfigError(f"--deepspeed: unknown preset '{value}'; use one of {names}, or a path to a DeepSpeed JSON file")
