"""``family_for``: which registered ``ModelFamily`` a model, config or checkpoint belongs to.

Matching reads ``config.architectures`` (class names) and ``config.model_type``; a family that
refines another (``parent``) wins only when the checkpoint's id or folder name is one of its hub
ids. A model no family matches gets ``GENERIC`` (tuners on all linear layers) and a one-line notice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from ..files import read_json
from ..model_family import ModelFamily

logger = logging.getLogger("swiftune.loading")

#: What a model no family matches is tuned with.
GENERIC = ModelFamily(
    name="generic",
    description="no registered family matched: tuners target every linear layer but the output head",
    target_modules="all-linear",
    template=None,
)


def _read_config(model_or_config: Any) -> tuple[list[str], str | None, str | None]:
    """(architectures, model_type, name_or_path) of a model, a config, a config dict or a folder."""
    obj = model_or_config
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        file = path / "config.json" if path.is_dir() else path
        data = read_json(file) if file.is_file() and file.suffix == ".json" else {}  # errors name the file
        data.setdefault("_name_or_path", str(obj))
        obj = data
    get_base = getattr(obj, "get_base_model", None)
    if callable(get_base):  # a SwiftModel or PeftModel: look at the model inside
        obj = get_base()
    config = getattr(obj, "config", obj)
    if isinstance(config, Mapping):
        archs, model_type = config.get("architectures"), config.get("model_type")
        name = config.get("_name_or_path") or config.get("name_or_path")
    else:
        archs, model_type = getattr(config, "architectures", None), getattr(config, "model_type", None)
        name = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    if not archs and not isinstance(config, Mapping) and hasattr(obj, "config"):
        archs = [type(obj).__name__]  # a model built from a config carries no architectures yet
    return list(archs or []), model_type or None, name or None


def _score(family: ModelFamily, archs: list[str], model_type: str | None, name: str | None) -> int:
    """0: no match. Higher is more specific: a hub-id match, then the class name, then model_type."""
    by_arch = bool(set(archs) & set(family.architectures))
    by_type = model_type is not None and model_type in family.model_types
    if not (by_arch or by_type):
        return 0
    by_id = family.matches_id(name)
    if family.parent is not None and not by_id:
        return 0  # refinements are picked by id only
    return 4 * by_id + 2 * by_arch + by_type


def family_for(model_or_config: Any, name_or_path: str | None = None, *, notice: bool = True) -> ModelFamily:
    """The registered family of a model / config / config dict / checkpoint folder.

    ``name_or_path`` overrides the name recorded in the config (a hub id or a folder). Unknown
    models get ``GENERIC``, with one logged warning unless ``notice`` is False.
    """
    from .. import registries

    archs, model_type, recorded = _read_config(model_or_config)
    name = name_or_path or recorded
    scored = [(_score(f, archs, model_type, name), n, f) for n, f in registries.models.items()]
    scored = [s for s in scored if s[0] > 0]
    if scored:
        best = max(s[0] for s in scored)
        return min((s for s in scored if s[0] == best), key=lambda s: s[1])[2]
    if notice:
        what = ", ".join(archs) or "no architectures"
        logger.warning(
            "swiftune: no registered model family matches %s (model_type %s); using defaults: "
            "tuners on all linear layers",
            what,
            model_type,
        )
    return GENERIC
