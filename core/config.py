"""``TunerConfig``: the pydantic model every tuner's configuration derives from.

One model serves Python, JSON/YAML files and CLI flags (``Field(description=...)`` is the flag's help). Validation errors are turned into
``ConfigError`` messages that name the tuner and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError


class TunerConfig(BaseModel):
    """Base class of tuner configs. Subclasses fix ``tuner`` with a ``Literal``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    tuner: str

    #: PEFT's ``peft_type`` when the on-disk format is PEFT's own (e.g. "LORA"). It also claims plain
    #: PEFT files of that type for this tuner (``swiftune.peft_claims``: a built-in keeps its type).
    peft_type: ClassVar[str | None] = None
    #: Narrows the claim to PEFT files whose fields hold these values (a variant, e.g.
    #: ``{"use_dora": True}``): such files load with this tuner, plain ones do not.
    peft_claim_fields: ClassVar[Mapping[str, Any]] = {}
    #: The config takes fields beyond its own and validates them itself (the PEFT bridge takes any
    #: PEFT field beside ``tuner``): the argument parser hands such names to it instead of refusing them.
    open_fields: ClassVar[bool] = False

    def __setattr__(self, name: str, value: Any) -> None:
        # Assignments are validated too; their errors read like the constructor's.
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(self.tuner, exc)) from None

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=True)

    @classmethod
    def from_yaml(cls, text: str) -> "TunerConfig":
        from .config_dispatch import parse_config  # the one upward import: the file names its tuner

        return parse_config(yaml.safe_load(text))

    @classmethod
    def from_file(cls, path: str | Path) -> "TunerConfig":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc
        from .config_dispatch import parse_config  # the one upward import: the file names its tuner

        return parse_config(data, source=str(path))

    # -- PEFT interop ----------------------------------------------------------------------
    def to_disk_dict(self) -> dict[str, Any]:
        """What ``adapter_config.json`` holds. Tuners with a PEFT format add PEFT's fields."""
        data = self.to_dict()
        if self.peft_type:
            data["peft_type"] = self.peft_type
        return data

    #: PEFT config fields that carry no meaning for loading here (bookkeeping, versions, the base's name,
    #: which every saved adapter records and configs without such a field drop on load).
    peft_informational_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "peft_type", "peft_version", "auto_mapping", "revision", "inference_mode", "megatron_core",
            "qalora_group_size", "base_model_name_or_path",
        }
    )

    @classmethod
    def from_disk_dict(cls, data: Mapping[str, Any]) -> "TunerConfig":
        """Inverse of ``to_disk_dict``; also reads PEFT's own ``adapter_config.json``.

        PEFT fields unknown here are dropped when informational or unset (None / False / empty);
        one that is set to something this tuner cannot honour is an error naming it.
        """
        name = cls.model_fields["tuner"].default
        clean: dict[str, Any] = {"tuner": name}
        for key, value in data.items():
            if key in cls.model_fields:
                clean[key] = value
            elif key in cls.peft_informational_fields or not value:
                continue
            else:
                raise ConfigError(
                    f"{name}: field '{key}' = {value!r} in the adapter config is not supported by "
                    f"swiftune's '{name}' tuner ({_peft_fallback_hint()})"
                )
        return validate_config(cls, clean)


def _peft_fallback_hint() -> str:
    """Where such a file can go instead: the tuner that runs PEFT's own implementation, if installed."""
    from .plugin_defaults import peft_fallback_tuner

    try:
        return f"the '{peft_fallback_tuner()}' bridge tuner runs PEFT's own implementation"
    except ConfigError:
        return "no installed tuner runs PEFT's own implementation"


def format_validation_error(tuner: str, exc: ValidationError, source: str | None = None) -> str:
    where = f"{source}: " if source else ""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{where}{tuner}: {field}: {msg}")
    return "\n".join(lines)


def validate_config(cls: type[TunerConfig], data: Mapping[str, Any], source: str | None = None) -> TunerConfig:
    tuner = str(data.get("tuner") or cls.model_fields["tuner"].default)
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(tuner, exc, source)) from None


def __getattr__(name: str) -> Any:
    """``from swiftune.config import parse_config`` (the path plugins and docs use) keeps working;
    the dispatch itself lives in ``config_dispatch`` (it asks the registries, a layer above)."""
    if name in ("parse_config", "is_multi_adapter_mapping"):
        from . import config_dispatch

        return getattr(config_dispatch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
