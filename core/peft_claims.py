"""Which tuner loads a plain PEFT ``adapter_config.json`` (one without a ``tuner`` field).

A tuner claims PEFT files through its config class: ``peft_type`` (e.g. ``"LORA"``) claims the
files of that type, and ``peft_claim_fields`` (e.g. ``{"use_dora": True}``) narrows the claim to
files whose fields hold those values, so a variant can take its files without taking the plain type.
For a file, among the claims whose type and fields match it:

1. the most specific claim (most fields) wins;
2. between equally specific claims, the built-in tuner (swiftune's own distribution) wins;
3. equally specific claims of two third-party tuners: none wins, loading the file is an error that
   names both (the file can name its tuner with ``"tuner"``, or one plugin can be disabled);
4. no claim: the ``peft`` bridge tuner, which runs PEFT's own implementation.

Neither registration nor alphabetical order plays a part. ``swiftune plugins`` reports claims that
lose to, or tie with, another (``claim_conflicts``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from . import registries
from .errors import ConfigError
from .plugins import DISABLE_ENV, OWN_DISTRIBUTION


@dataclass(frozen=True)
class PeftClaim:
    """One tuner's claim on the PEFT files of ``peft_type`` whose fields hold ``fields``."""

    tuner: str
    plugin: str
    peft_type: str
    fields: tuple[tuple[str, Any], ...]
    builtin: bool

    def matches(self, data: Mapping[str, Any]) -> bool:
        return data.get("peft_type") == self.peft_type and all(data.get(k) == v for k, v in self.fields)

    @property
    def what(self) -> str:
        """``peft_type 'LORA'`` or ``peft_type 'LORA' with use_dora=true``."""
        fields = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.fields)
        return f"peft_type '{self.peft_type}'" + (f" with {fields}" if fields else "")

    @property
    def who(self) -> str:
        return f"{'built-in ' if self.builtin else ''}tuner '{self.tuner}' (plugin '{self.plugin}')"


def claims() -> list[PeftClaim]:
    """Every installed tuner's claim, in registry (name) order."""
    plugins = registries.host.plugins
    out = []
    for entry in registries.tuners.entries():
        config = entry.obj.config_class
        peft_type = getattr(config, "peft_type", None)
        if not peft_type:
            continue
        fields = tuple(sorted(dict(getattr(config, "peft_claim_fields", None) or {}).items()))
        info = plugins.get(entry.plugin)
        builtin = info is not None and info.distribution == OWN_DISTRIBUTION
        out.append(PeftClaim(entry.name, entry.plugin, str(peft_type), fields, builtin))
    return out


def _winners(candidates: list[PeftClaim]) -> list[PeftClaim]:
    """The claims that win among ``candidates`` by the rules above: one, or several when tied."""
    if not candidates:
        return []
    most = max(len(c.fields) for c in candidates)
    top = [c for c in candidates if len(c.fields) == most]
    builtins = [c for c in top if c.builtin]
    return builtins if builtins else top


def tuner_for_peft_config(data: Mapping[str, Any], source: str | None = None) -> str | None:
    """The tuner that loads the PEFT config ``data``; None when no tuner claims its type."""
    winners = _winners([c for c in claims() if c.matches(data)])
    if len(winners) == 1:
        return winners[0].tuner
    if not winners:
        return None
    where = f"{source}: " if source else ""
    names = " and ".join(c.who for c in winners)
    raise ConfigError(
        f"{where}this PEFT adapter ({winners[0].what}) is claimed equally by {names}; add "
        f'"tuner": "<name>" to its adapter_config.json, or disable one plugin with {DISABLE_ENV}'
    )


def claim_conflicts() -> dict[str, list[str]]:
    """Plugin name -> messages for its claims that lose to, or tie with, an identical claim."""
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[PeftClaim]] = {}
    for claim in claims():
        key = (claim.peft_type, tuple((k, json.dumps(v, sort_keys=True)) for k, v in claim.fields))
        groups.setdefault(key, []).append(claim)
    out: dict[str, list[str]] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        winners = _winners(group)
        for claim in group:
            if len(winners) == 1 and claim is winners[0]:
                continue
            others = [c for c in group if c is not claim]
            head = f"peft_type conflict: tuner '{claim.tuner}' claims {claim.what}"
            if len(winners) == 1:
                message = (
                    f"{head}, which {winners[0].who} keeps: plain PEFT files of that type load with "
                    f"'{winners[0].tuner}' (claim a variant with peft_claim_fields, or name the tuner in the file "
                    f'with "tuner")'
                )
            else:
                message = (
                    f"{head}, as {' and '.join(c.who for c in others)} do: such files load only when they name "
                    f'their tuner ("tuner") or one plugin is disabled ({DISABLE_ENV})'
                )
            out.setdefault(claim.plugin, []).append(message)
    return out
