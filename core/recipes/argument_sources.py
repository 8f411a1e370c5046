"""Arguments from a YAML file or Python keywords into one validated pydantic model per command.

``from_python`` serves ``swiftune.sft(...)`` and the other Python calls; ``swiftune.cli.args`` builds
the command line on the same pieces (a flag is one more source of values). Each value is routed to
the command's field or the tuner's (through ms-swift's names, ``aliases``), then validated once, so
every error reads the same way: one line naming the keyword, the flag or the YAML key, with a
suggestion. This module imports nothing of the CLI: the recipes' calls use it without the CLI package.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from . import aliases
from .argument_fields import _from_flag, _literal_values, flag_name

__all__ = ["Given", "Routed", "from_python", "read_yaml", "route", "unknown_message", "validate"]

#: The origin of values given as Python keywords (messages name the keyword, not a flag).
PYTHON = "<python>"


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of argument names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


# -- messages -------------------------------------------------------------------------------------
def _close(name: str, known: Sequence[str], n: int) -> list[str]:
    """Close names, compared in one spelling; never the name itself."""
    key = aliases.normalize(name)
    candidates = sorted({aliases.normalize(k) for k in known} - {key})
    return difflib.get_close_matches(key, candidates, n=n, cutoff=0.6)


def unknown_message(name: str, known: Sequence[str], source: str = "") -> str:
    """``unknown argument --lerning-rate; did you mean --learning-rate?`` (YAML keys read as keys)."""
    key = aliases.normalize(name)
    if source == PYTHON:
        close = _close(name, known, 2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return aliases.unsupported_message(key, key) or f"unknown argument {name}{hint}"
    if source:
        close = _close(name, known, 2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return aliases.unsupported_message(key, f"{source}: {key}") or f"{source}: unknown key {key}{hint}"
    if not name.startswith("-"):
        return f"unexpected argument {name!r} (a YAML config file must come first)"
    flag = flag_name(key)
    unsupported = aliases.unsupported_message(key, flag)
    if unsupported:
        return unsupported
    close = _close(name, known, 1)
    hint = f"; did you mean {flag_name(close[0])}?" if close else ""
    return f"unknown argument {flag}{hint}"


def _error_line(err: Mapping[str, Any], where: str, annotation: Any) -> str:
    got = err.get("input")
    msg = err["msg"]
    if err["type"] == "literal_error" or (err["type"] == "enum" and annotation is not None):
        choices = [str(v) for v in _literal_values(annotation)]
        close = difflib.get_close_matches(str(got), choices, n=1, cutoff=0.4)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    if err["type"] == "missing":
        return f"{where}: required"
    return f"{where}: {msg} (got {got!r})"


def _validation_message(exc: ValidationError, model: type[BaseModel], where_of) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        ann = model.model_fields[field].annotation if field in model.model_fields else None
        lines.append(_error_line(err, where_of(field), ann))
    return "; ".join(dict.fromkeys(lines))


def validate(model: type[BaseModel], data: Mapping[str, Any], source: str = "",
             origins: Mapping[str, str] | None = None) -> BaseModel:
    """Validate ``data``; errors name the flag, or the key in ``source`` (a file)."""
    origins = origins or {}
    unknown = [k for k in data if k not in model.model_fields]
    if unknown:
        raise ConfigError(unknown_message(unknown[0], list(model.model_fields), origins.get(unknown[0], source)))

    def where(field: str) -> str:
        origin = origins.get(field, source)
        if origin == PYTHON:
            return field
        return f"{origin}: {field}" if origin else flag_name(field) if field else "(arguments)"

    return _validated(model, data, where)


def _validated(model: type[BaseModel], data: Mapping[str, Any], where) -> BaseModel:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, model, where)) from None


# -- where each given value goes ------------------------------------------------------------------
@dataclass
class Given:
    """One value as the user gave it: a flag, a YAML key or a Python keyword."""

    name: str  # snake_case
    value: Any
    where: str  # how errors name it: "--lora-rank", "run.yaml: lora_rank", "lora_rank"
    origin: str  # "" (a flag), a file, or PYTHON
    raw: bool = False  # command-line text still to convert (lists of lists, JSON objects)
    nested: bool = False  # under tuner_args:


@dataclass
class Routed:
    command: dict[str, Any]
    tuner: dict[str, Any]
    where: dict[str, str]
    tuner_where: dict[str, str]


def _items(data: Mapping[str, Any], origin: str) -> list[Given]:
    """Items of a YAML file or of Python keywords; ``tuner_args:`` entries are marked nested."""
    items = []
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name == "tuner_args" and value is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{_where('tuner_args', origin)}: expected a mapping of the tuner's config fields")
            items += [Given(str(k).replace("-", "_"), v, _where(f"tuner_args.{k}", origin), origin, nested=True)
                      for k, v in value.items() if k != "tuner"]
            continue
        items.append(Given(name, value, _where(name, origin), origin))
    return items


def _where(name: str, origin: str) -> str:
    if origin == PYTHON:
        return name
    return f"{origin}: {name}" if origin else flag_name(name)


def _known(model: type[BaseModel], tuner_config: type[BaseModel] | None) -> list[str]:
    names = [k for k in model.model_fields if k != "tuner_args"]
    names += [k for k in (tuner_config.model_fields if tuner_config else {}) if k != "tuner"]
    return names + [a.name for a in aliases.ALIASES] + [a.name for a in aliases.ACCEPTED]


def _unknown(item: Given, model: type[BaseModel], tuner_config: type[BaseModel] | None,
             scope: Mapping[str, Any]) -> str:
    tuner = tuner_config.model_fields["tuner"].default if tuner_config else None
    targets = aliases.alias_targets(item.name)
    if targets:
        named = " / ".join(flag_name(t) if item.origin == "" else t for t in targets)
        where = f" nor of the '{tuner}' tuner" if tuner else ""
        return f"{item.where} is ms-swift's name for {named}, which is not an argument of this command{where}"
    if item.nested:
        fields = [k for k in scope if k != "tuner"]
        close = _close(item.name, fields, 2)
        hint = f"; did you mean {' or '.join(close)}?" if close else f" ({tuner} fields: {', '.join(fields)})"
        where = item.where.rsplit(".", 1)[0]
        return f"{where}: unknown {tuner} field {item.name}{hint}"
    origin = item.origin or PYTHON
    return unknown_message(flag_name(item.name) if item.raw else item.name, _known(model, tuner_config),
                           origin if not item.raw else "")


def route(model: type[BaseModel], tuner_config: type[BaseModel] | None, given: Sequence[Given]) -> Routed:
    """Send each value to the command's field or the tuner's, through ms-swift's aliases."""
    fields = {k: f for k, f in model.model_fields.items() if k != "tuner_args"}
    tuner_fields = {k: f for k, f in (tuner_config.model_fields if tuner_config else {}).items() if k != "tuner"}
    everything = {**tuner_fields, **fields}  # a command field wins over a tuner field of that name
    out = Routed({}, {}, {}, {})
    for item in given:
        scope = tuner_fields if item.nested else everything
        target, convert = item.name, None
        if target not in scope:
            found = aliases.lookup(item.name, scope)
            if found is None:
                entry = None if item.nested else aliases.accepted(item.name, fields)
                if entry is None and getattr(tuner_config, "open_fields", False):
                    out.tuner[item.name], out.tuner_where[item.name] = item.value, item.where  # it validates them
                    continue
                if entry is None:
                    raise ConfigError(_unknown(item, model, tuner_config, scope))
                aliases.check_accepted(entry, item.value, item.where)
                continue
            target, convert = found[1].field, found[1].convert
        value = _from_flag(scope[target], item.value, target, raw=item.raw)
        if convert is not None:
            value = convert(value)
        if target in fields and not item.nested:
            out.command[target], out.where[target] = value, item.where
        else:
            out.tuner[target], out.tuner_where[target] = value, item.where
    return out


def _tuner_config(model: type[BaseModel], sources: Sequence[tuple[Mapping[str, Any], str]]
                  ) -> tuple[type[BaseModel] | None, str | None]:
    """Phase one: which tuner's fields apply (``--tuner`` / ms-swift's ``--tuner_type``,
    ``--train_type``, ``--quant_bits``; flags over the file; else the default)."""
    if "tuner_args" not in model.model_fields:
        return None, None
    from .. import registries

    keys = aliases.TUNER_KEYS + aliases.QUANT_KEYS
    merged: dict[str, Any] = {}
    origin_of: dict[str, str] = {}
    for data, origin in sources:
        values = {k: data[k] for k in keys if data.get(k) is not None}
        if any(k in values for k in aliases.TUNER_KEYS):
            merged = {k: v for k, v in merged.items() if k not in aliases.TUNER_KEYS}
        merged.update(values)
        origin_of.update({k: origin for k in values})
    name, key = aliases.choose_tuner(merged, model.model_fields["tuner"].get_default(call_default_factory=True))
    try:
        return registries.tuners.get(name).config_class, name if key else None
    except ConfigError:
        raise
    except Exception as exc:  # UnknownNameError names the installed tuners and close matches
        raise ConfigError(f"{_where(key or 'tuner', origin_of.get(key or 'tuner', ''))}: {exc}") from None


def _finish(model: type[BaseModel], tuner_config: type[BaseModel] | None, chosen: str | None,
            routed: Routed) -> BaseModel:
    data = dict(routed.command)
    if tuner_config is not None:
        if chosen:
            data["tuner"] = chosen
        name = tuner_config.model_fields["tuner"].default
        cfg = _validated(tuner_config, {**routed.tuner, "tuner": name},
                         lambda f: routed.tuner_where.get(f, flag_name(f)))
        dumped = cfg.model_dump(mode="json")
        # Names the config folded into its own fields (an open config's extras) travel as given.
        data["tuner_args"] = {k: dumped.get(k, routed.tuner[k]) for k in routed.tuner}
    return _validated(model, data, lambda f: routed.where.get(f, flag_name(f)) if f else "(arguments)")


def from_python(schema: type[BaseModel], config: Any = None, /, **kwargs: Any) -> BaseModel:
    """The Python entry points' arguments: a model instance, a mapping or a YAML path, plus keywords.

    Keywords override the config's values (like flags override a file); errors name the keyword.
    ms-swift's names work as keywords too (``train_type="lora"``, ``lora_rank=8``).
    """
    if isinstance(config, schema):  # the fields it was given, so defaults that depend on others still apply
        data, source = config.model_dump(exclude_unset=True), PYTHON
    elif isinstance(config, (str, Path)):
        data, source = read_yaml(config), str(config)
    elif isinstance(config, Mapping):
        data, source = {str(k).replace("-", "_"): v for k, v in config.items()}, PYTHON
    elif config is None:
        data, source = {}, PYTHON
    else:
        raise ConfigError(f"expected {schema.__name__}, a mapping or a YAML path, got {type(config).__name__}")
    tuner_config, chosen = _tuner_config(schema, [(data, source), (kwargs, PYTHON)])
    routed = route(schema, tuner_config, _items(data, source) + _items(kwargs, PYTHON))
    return _finish(schema, tuner_config, chosen, routed)
