"""No ``tuner`` key in an ``adapter_config.json`` whose ``peft_type`` already names the tuner.

PEFT hands every key of the file to its config class and warns about the ones it does not know
("Unexpected keyword arguments ['tuner'] ... upgrade PEFT": advice that is wrong for a swiftune
folder). So ``SwiftModel.save_pretrained`` leaves ``tuner`` out when the file's ``peft_type`` claim
(``swiftune.peft_claims``, or the PEFT fallback tuner for unclaimed types) picks the very tuner
that wrote it, and ``read_adapter_config`` puts it back by the same rule, so every reader of a
folder sees its tuner. A file whose claim would pick another tuner keeps ``tuner`` (QLoRA writes
LoRA files; the peft bridge running PEFT's LoRA); so does every non-PEFT format.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError

TUNER_KEY = "tuner"


def implied_tuner(data: Mapping[str, Any]) -> str | None:
    """The tuner a file without ``tuner`` loads with; None when it has no ``peft_type``, or when the
    claims tie or no tuner takes it (loading then reports why)."""
    if not data.get("peft_type"):
        return None
    from .peft_claims import tuner_for_peft_config
    from .plugin_defaults import peft_fallback_tuner

    body = {k: v for k, v in data.items() if k != TUNER_KEY}
    try:
        return tuner_for_peft_config(body) or peft_fallback_tuner()
    except ConfigError:
        return None


def without_implied_tuner(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` to write: ``tuner`` dropped when the claims name that tuner anyway."""
    out = dict(data)
    if out.get(TUNER_KEY) is not None and implied_tuner(out) == out[TUNER_KEY]:
        del out[TUNER_KEY]
    return out


def with_implied_tuner(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as read: ``tuner`` filled in from the claims when the file leaves it out."""
    out = dict(data)
    if out.get(TUNER_KEY) is None:
        tuner = implied_tuner(out)
        if tuner is not None:
            out[TUNER_KEY] = tuner
    return out
