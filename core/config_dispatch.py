"""Which tuner's config a value becomes: the registry dispatch above ``TunerConfig``.

``parse_config`` turns a mapping with a ``tuner`` key, a ``TunerConfig`` or a ``peft.PeftConfig``
into the config of the named tuner; ``config_from_disk`` does the same for an
``adapter_config.json`` (swiftune's ``tuner`` field, or PEFT's ``peft_type`` claimed through
``peft_claims``). Both ask the registries, so they live here, a layer above the config base class.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import registries
from .config import TunerConfig, validate_config
from .errors import ConfigError
from .peft_claims import tuner_for_peft_config
from .plugin_defaults import peft_fallback_tuner


def parse_config(cfg: Any, source: str | None = None) -> TunerConfig:
    """A ``TunerConfig``, a dict with a ``tuner`` key, or a ``peft.PeftConfig`` -> TunerConfig."""
    if isinstance(cfg, TunerConfig):
        return cfg
    if type(cfg).__module__.startswith("peft.") and hasattr(cfg, "peft_type"):
        # PEFT's own object runs on the tuner that loads unclaimed PEFT files, through its file format.
        try:
            return registries.tuners.get(peft_fallback_tuner()).config_class.from_disk_dict(cfg.to_dict())
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
    where = f"{source}: " if source else ""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}a tuner config must be a TunerConfig or a mapping, got {type(cfg).__name__}")
    if "tuner" not in cfg:
        raise ConfigError(f"{where}tuner config is missing the 'tuner' field (installed: {', '.join(registries.tuners.names())})")
    tuner_cls = registries.tuners.get(str(cfg["tuner"]))
    return validate_config(tuner_cls.config_class, cfg, source)


def is_multi_adapter_mapping(cfg: Any) -> bool:
    """``{adapter_name: config, ...}`` as opposed to a single config mapping."""
    return (
        isinstance(cfg, Mapping)
        and "tuner" not in cfg
        and len(cfg) > 0
        and all(isinstance(v, (Mapping, TunerConfig)) or type(v).__module__.startswith("peft.") for v in cfg.values())
    )


def config_from_disk(data: Mapping[str, Any], source: str | None = None) -> TunerConfig:
    """Read an ``adapter_config.json``: swiftune's (``tuner`` field) or PEFT's (``peft_type``)."""
    tuner_name = data.get("tuner")
    if tuner_name is None:
        if data.get("peft_type") is None:
            raise ConfigError(f"{source}: adapter config has neither 'tuner' nor 'peft_type'")
        # Claims by peft_type (and fields): see swiftune.peft_claims for who wins.
        tuner_name = tuner_for_peft_config(data, source) or peft_fallback_tuner()
    cls = registries.tuners.get(str(tuner_name))
    try:
        return cls.config_class.from_disk_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
