"""One pydantic model per command serves flags, a YAML file and Python calls.

``parse_command`` reads ``[CONFIG.yaml] [--flags ...]`` in two phases: first the tuner name (from
``--tuner`` or the file), then a parser with the command's fields plus that tuner's config fields
(``--r 16 --lora-alpha 32``). The file and the flags are merged (flags win) and validated once, so
every error reads the same way: one line naming the flag or the YAML key, with a suggestion.

Spelling: every flag works in kebab-case and snake_case (``--learning-rate``, ``--learning_rate``);
a yes/no field takes no value, a value (``true/false/1/0/yes/no``) or a ``--no-`` form; a list field
takes several values and may repeat (``--dataset a b --dataset c``). ms-swift's names are aliases
(``aliases.py``) in flags, YAML keys and Python keywords alike. Tuner fields may sit at the top
level of a YAML file (as in ms-swift's) or under ``tuner_args:``.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from . import aliases
from .fields import _accepts, _flag_kwargs, _from_flag, _literal_values, flag_name

__all__ = ["build_flags", "command_parser", "flag_name", "from_python", "parse_command", "read_yaml",
           "unknown_message", "validate"]

TUNER_DEST = "tuner_args."
ALIAS_DEST = "alias."
#: The origin of values given as Python keywords (messages name the keyword, not a flag).
PYTHON = "<python>"


# -- flags ----------------------------------------------------------------------------------------
def build_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, model: type[BaseModel],
                skip: Sequence[str] = (), dest_prefix: str = "", defaults: Mapping[str, Any] | None = None) -> list[str]:
    """Add one flag per field of ``model``; returns the flag names added.

    Values stay strings here (defaults are SUPPRESSed so only given flags appear); pydantic does
    the conversion, so a flag, a YAML value and a Python argument are validated by one rule.
    A mapping field takes a JSON object (``--peft-config '{"peft_type": "IA3"}'``).
    """
    added = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        ann = field.annotation
        help_text = (field.description or "").replace("%", "%%")
        default = field.default_factory() if field.default_factory is not None else field.default
        default = (defaults or {}).get(name, default)  # a recipe's own default for a tuner field
        if default not in (None, [], {}, ...) and not field.is_required():
            shown = " ".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" (default: {shown})"
        kwargs: dict[str, Any] = {"dest": dest_prefix + name, "default": argparse.SUPPRESS, "help": help_text,
                                  **_flag_kwargs(ann)}
        parser.add_argument(flag_name(name), **kwargs)
        added.append(flag_name(name))
        if _accepts(ann, bool):
            no = "--no-" + flag_name(name)[2:]
            parser.add_argument(no, dest=dest_prefix + name, action="store_const", const="false",
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            added.append(no)
    return added


def _alias_flags(parser: argparse.ArgumentParser, fields: Mapping[str, Any]) -> None:
    """ms-swift's names (``aliases.py``) that are not fields here, shown in one help group."""
    group = parser.add_argument_group("ms-swift names (aliases; see docs/migrating-from-ms-swift.md)")
    for alias in aliases.ALIASES:
        found = aliases.lookup(alias.name, fields)
        if alias.name in fields or (found is None and aliases.accepted(alias.name, fields)):
            continue
        ann = fields[found[1].field].annotation if found else None
        kwargs = _flag_kwargs(bool if alias.switch else ann) if found else {"nargs": "*", "metavar": "VALUE"}
        # Aliases without a target here stay registered (their error says so) but out of --help.
        text = f"= {flag_name(found[1].field)}{'; ' + alias.note if alias.note else ''}" if found else (
            alias.note if alias.name in aliases.QUANT_KEYS and "tuner" in fields else argparse.SUPPRESS)
        group.add_argument(flag_name(alias.name), dest=ALIAS_DEST + alias.name, default=argparse.SUPPRESS,
                           help=text.replace("%", "%%") if text != argparse.SUPPRESS else text, **kwargs)
    for entry in aliases.ACCEPTED:
        if entry.name in fields or aliases.accepted(entry.name, fields) is None:
            continue
        group.add_argument(flag_name(entry.name), dest=ALIAS_DEST + entry.name, default=argparse.SUPPRESS,
                           nargs="?", const="true", metavar="|".join(entry.values),
                           help=f"accepted: {', '.join(entry.values)} ({entry.note})".replace("%", "%%"))


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


def _flag_items(given: Mapping[str, Any]) -> list[Given]:
    items = []
    for dest, value in given.items():
        name = dest.split(".", 1)[1] if dest.startswith((TUNER_DEST, ALIAS_DEST)) else dest
        items.append(Given(name, value, flag_name(name), "", raw=True))
    return items


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


# -- the two-phase parse --------------------------------------------------------------------------
def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``--learning_rate=1`` -> ``--learning-rate=1``: one spelling for argparse (values untouched)."""
    out = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            flag, eq, value = token.partition("=")
            token = flag.replace("_", "-") + eq + value
        out.append(token)
    return out


def _pop_all(argv: list[str], flag: str) -> list[str]:
    """Remove every ``flag VALUE`` / ``flag=VALUE`` from ``argv``; their values in order."""
    values = []
    i = 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
            del argv[i : i + 2]
        elif argv[i].startswith(flag + "="):
            values.append(argv.pop(i).split("=", 1)[1])
        else:
            i += 1
    return values


def _pop_option(argv: list[str], flag: str) -> str | None:
    values = _pop_all(argv, flag)
    return values[-1] if values else None


def _peek_option(argv: Sequence[str], flag: str) -> str | None:
    return _pop_option(list(argv), flag)


def _config_path(argv: list[str]) -> str | None:
    """The YAML file: first argument or ``--config``; two files are an error, not a silent choice."""
    positional = argv.pop(0) if argv and not argv[0].startswith("-") else None
    options = _pop_all(argv, "--config")
    files = ([positional] if positional else []) + options
    if len(files) > 1:
        raise ConfigError(f"two YAML config files given ({' and '.join(files)}): pass one (a flag overrides a value of it)")
    return files[0] if files else None


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


def command_parser(model: type[BaseModel], prog: str, tuner_config: type[BaseModel] | None = None,
                   description: str | None = None) -> argparse.ArgumentParser:
    from . import Parser

    doc = (model.__doc__ or "").strip().splitlines()[0]
    parser = Parser(prog=prog, description=description or doc.split(": ", 1)[-1],
                    allow_abbrev=False, usage=f"{prog} [CONFIG.yaml] [--flags ...]")
    parser.add_argument("--config", metavar="CONFIG.yaml", help="YAML file of arguments (flags override it); "
                        "may also be given as the first argument")
    build_flags(parser.add_argument_group(f"{prog.split()[-1]} options"), model, skip=["tuner_args"])
    fields = dict(model.model_fields)
    if tuner_config is not None:
        name = tuner_config.model_fields["tuner"].default
        group = parser.add_argument_group(f"{name} tuner options (YAML: at the top level or under tuner_args:)")
        from ..recipes.sft_defaults import tuner_defaults

        recipe = tuner_defaults(tuner_config.model_fields, {}, model) if "learning_rate" in model.model_fields else {}
        build_flags(group, tuner_config, skip=["tuner", *model.model_fields], dest_prefix=TUNER_DEST, defaults=recipe)
        fields = {**tuner_config.model_fields, **fields}
    _alias_flags(parser, {k: f for k, f in fields.items() if k not in ("tuner_args",)})
    return parser


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


def parse_command(model: type[BaseModel], argv: Sequence[str], prog: str) -> BaseModel:
    """``[CONFIG.yaml] [--flags ...]`` -> a validated ``model``; errors are one-line ``ConfigError``."""
    argv = normalize_argv(argv)
    config = _config_path(argv)
    file_data = read_yaml(config) if config else {}
    source = str(config) if config else ""
    peeked = {k: _peek_option(argv, flag_name(k)) for k in aliases.TUNER_KEYS + aliases.QUANT_KEYS}
    tuner_config, chosen = _tuner_config(model, [(file_data, source), (peeked, "")])
    parser = command_parser(model, prog, tuner_config)
    ns, extras = parser.parse_known_args(argv)
    open_items = _open_flag_items(extras) if getattr(tuner_config, "open_fields", False) else None
    if extras and open_items is None:
        raise ConfigError(unknown_message(extras[0].split("=", 1)[0], _known(model, tuner_config)))
    given = {k: v for k, v in vars(ns).items() if k != "config"}
    routed = route(model, tuner_config, _items(file_data, source) + _flag_items(given) + (open_items or []))
    return _finish(model, tuner_config, chosen, routed)


def _open_flag_items(extras: Sequence[str]) -> list[Given] | None:
    """``--name value [value ...]`` flags for an open tuner config (the PEFT bridge: ``--peft-type IA3``);
    None when ``extras`` holds anything else (a stray value), which stays an error."""
    items: list[Given] = []
    for token in extras:
        if token.startswith("--") and len(token) > 2:
            flag, eq, value = token[2:].partition("=")
            items.append(Given(flag.replace("-", "_"), [value] if eq else [], f"--{flag}", "", raw=True))
        elif items:
            items[-1].value.append(token)
        else:
            return None
    for item in items:  # YAML scalars ("8" -> 8, "true" -> True); one value alone, none is a switch
        values = [yaml.safe_load(v) if v else v for v in item.value]
        item.value = True if not values else values[0] if len(values) == 1 else values
    return items


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
