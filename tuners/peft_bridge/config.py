"""``PeftBridgeConfig``: a PEFT config (as PEFT's own dict) behind swiftune's ``TunerConfig``.

The dict is validated by building PEFT's config class from it, and kept in canonical form (what
PEFT writes to ``adapter_config.json``: sets as sorted lists, enums as strings), so a config that
went through a file compares equal to the one that was saved.
"""

from __future__ import annotations

import copy
import json
from enum import Enum
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from swiftune.config import TunerConfig, validate_config

#: With no ``peft_config``: PEFT's own LoRA on every linear layer but the output head.
DEFAULT_PEFT_CONFIG: dict[str, Any] = {"peft_type": "LORA", "target_modules": "all-linear"}

#: PEFT's prompt-learning methods that put virtual tokens in front of the input embeddings: the
#: bridge runs PEFT's own encoder modules for them (see prompt.py).
PROMPT_METHODS = ("P_TUNING", "PROMPT_TUNING")

# Fields the bridge cannot honour because PEFT applies them outside its layer injection (in PeftModel).
_UNSUPPORTED_FIELDS = {
    "modules_to_save": "train the module with the 'part' tuner or use the 'lora' tuner's modules_to_save",
    "trainable_token_indices": "use the 'lora' tuner or PEFT's PeftModel",
}


def _plain(value: Any) -> Any:
    """JSON-ready value as PEFT writes it (sets become sorted lists, enums their value)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build_peft_config(fields: Mapping[str, Any]) -> Any:
    """A fresh ``peft.PeftConfig`` from its dict; errors say what is wrong in PEFT's own words."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    data = copy.deepcopy(dict(fields))
    peft_type = str(_plain(data.get("peft_type") or "")).upper()
    if not peft_type:
        raise ValueError("needs 'peft_type' (e.g. 'IA3', 'LOHA', 'LOKR', 'ADALORA', 'LORA')")
    if peft_type not in PEFT_TYPE_TO_CONFIG_MAPPING:
        known = sorted(getattr(t, "value", str(t)) for t in PEFT_TYPE_TO_CONFIG_MAPPING)
        raise ValueError(f"unknown peft_type '{peft_type}'; PEFT knows: {', '.join(known)}")
    data["peft_type"] = peft_type
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    try:
        cfg = config_cls(**data)
    except TypeError as exc:
        raise ValueError(f"{config_cls.__name__}: {exc}") from None
    if cfg.is_prompt_learning or cfg.is_adaption_prompt:
        if peft_type not in PROMPT_METHODS:
            raise ValueError(
                f"{peft_type}: of PEFT's prompt-learning methods the bridge runs {', '.join(PROMPT_METHODS)}; "
                "for prefix tuning use swiftune's 'prefix' tuner (PEFT's format), else peft.get_peft_model"
            )
        if cfg.num_transformer_submodules not in (None, 1):
            raise ValueError("num_transformer_submodules must be 1: encoder-decoder models are not supported")
        return cfg
    tuner_cls = PEFT_TYPE_TO_TUNER_MAPPING.get(peft_type)
    if tuner_cls is None or getattr(tuner_cls, "uses_shared_state", False):
        raise ValueError(
            f"{peft_type} keeps state shared between layers on PEFT's model object, so peft.inject_adapter_in_model "
            "cannot run it; use peft.get_peft_model"
        )
    for name, hint in _UNSUPPORTED_FIELDS.items():
        if getattr(cfg, name, None):
            raise ValueError(f"'{name}' is applied by PEFT's PeftModel, not by layer injection: {hint}")
    if getattr(cfg, "bias", "none") != "none":
        raise ValueError("bias other than 'none' trains base parameters, which the bridge does not run; use the 'lora' tuner")
    return cfg


def canonical(fields: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(_plain(build_peft_config(fields).to_dict())))


class PeftBridgeConfig(TunerConfig):
    """Runs PEFT's own implementation of the method named by ``peft_config['peft_type']``."""

    tuner: Literal["peft"] = "peft"
    open_fields = True  # PEFT's own fields (peft_type, r, ...) beside 'tuner' go into peft_config

    peft_config: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_PEFT_CONFIG),
        validate_default=True,
        description="PEFT's config as a dict (what PeftConfig.to_dict() gives) or a peft.PeftConfig",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        """``{"tuner": "peft", "peft_type": "IA3", ...}``: PEFT's fields beside ``tuner`` go into ``peft_config``."""
        if not isinstance(data, Mapping) or "peft_type" not in data:
            return data
        if "peft_config" in data:
            raise ValueError("give PEFT's fields (peft_type, ...) either inside peft_config or beside 'tuner', not both")
        return {"tuner": data.get("tuner", "peft"), "peft_config": {k: v for k, v in data.items() if k != "tuner"}}

    @field_validator("peft_config", mode="before")
    @classmethod
    def _validate(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
            value = value.to_dict()
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a dict or a peft.PeftConfig, got {type(value).__name__}")
        return canonical(value)

    @property
    def is_prompt_learning(self) -> bool:
        return self.method in PROMPT_METHODS

    @property
    def method(self) -> str:
        """PEFT's ``peft_type`` of the wrapped method, e.g. 'IA3'."""
        return self.peft_config["peft_type"]

    def build(self) -> Any:
        """A fresh ``peft.PeftConfig`` (PEFT mutates the one it injects with)."""
        return build_peft_config(self.peft_config)

    # -- on disk: PEFT's own adapter_config.json plus "tuner" -------------------------------------------
    def to_disk_dict(self) -> dict[str, Any]:
        return {**copy.deepcopy(self.peft_config), "tuner": self.tuner}

    @classmethod
    def from_disk_dict(cls, data: Mapping[str, Any]) -> "PeftBridgeConfig":
        body = {k: v for k, v in data.items() if k != "tuner"}
        return validate_config(cls, {"tuner": "peft", "peft_config": body})  # type: ignore[return-value]
