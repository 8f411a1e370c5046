"""One pydantic model per command serves flags, a YAML file and Python calls.

``parse_command`` reads ``[CONFIG.yaml] [--flags ...]`` in two phases: first the tuner name (from
``--tuner`` or the file), then a parser with the command's fields plus that tuner's config fields
(``--r 16 --lora-alpha 32``). The file and the flags are merged (flags win) and validated once, so
every error reads the same way: one line naming the flag or the YAML key, with a suggestion.

Tuner fields live under ``tuner_args:`` in a YAML file; on the command line they are plain flags.
"""

from __future__ import annotations

import argparse
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError

TUNER_DEST = "tuner_args."
#: The origin of values given as Python keywords (messages name the keyword, not a flag).
PYTHON = "<python>"
#: A single ``--target-modules`` value with one of these characters (or "all-linear") is a regex.
_REGEX_CHARS = re.compile(r"[.*+?^$()\[\]{}|\\]")


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


# -- annotations ----------------------------------------------------------------------------------
def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _unwrap_optional(annotation: Any) -> Any:
    args = _union_args(annotation)
    return args[0] if len(args) == 1 else annotation


def _is_list(annotation: Any) -> bool:
    return any(typing.get_origin(a) in (list, tuple, set) for a in _union_args(annotation))


def _accepts(annotation: Any, kind: type) -> bool:
    return any(a is kind for a in _union_args(annotation))


def _literal_values(annotation: Any) -> list[str]:
    values: list[str] = []
    for a in _union_args(annotation):
        if typing.get_origin(a) is Literal:
            values += [str(v) for v in typing.get_args(a)]
    return values


def _is_mapping(annotation: Any) -> bool:
    return all(typing.get_origin(a) is dict or a is dict for a in _union_args(annotation))


# -- flags ----------------------------------------------------------------------------------------
def build_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, model: type[BaseModel],
                skip: Sequence[str] = (), dest_prefix: str = "") -> list[str]:
    """Add one flag per field of ``model``; returns the flag names added.

    Values stay strings here (defaults are SUPPRESSed so only given flags appear); pydantic does
    the conversion, so a flag, a YAML value and a Python argument are validated by one rule.
    A mapping field takes a JSON object (``--peft-config '{"peft_type": "IA3"}'``).
    """
    added = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if name in skip:
            continue
        help_text = (field.description or "").replace("%", "%%")
        default = field.default_factory() if field.default_factory is not None else field.default
        if default not in (None, [], {}, ...) and not field.is_required():
            shown = " ".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" (default: {shown})"
        choices = _literal_values(ann)
        kwargs: dict[str, Any] = {"dest": dest_prefix + name, "default": argparse.SUPPRESS, "help": help_text}
        if _is_mapping(ann):
            kwargs["metavar"] = "JSON"
        elif _unwrap_optional(ann) is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif _accepts(ann, bool):  # e.g. ``resume: bool | str``: a bare flag means true
            kwargs.update(nargs="?", const="true", metavar="VALUE")
        elif _is_list(ann):
            kwargs.update(action="append", metavar="VALUE")
        else:
            kwargs["metavar"] = "|".join(choices) if choices else name.upper()
        parser.add_argument(flag_name(name), **kwargs)
        added.append(flag_name(name))
        if _accepts(ann, bool) and _unwrap_optional(ann) is not bool:
            no = "--no-" + flag_name(name)[2:]
            parser.add_argument(no, dest=dest_prefix + name, action="store_const", const="false",
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            added.append(no)
    return added


def _from_flag(field: Any, value: Any, name: str = "") -> Any:
    """Turn repeated-flag lists back into what the field expects; decode JSON objects."""
    ann = field.annotation if field is not None else None
    if ann is not None and _is_mapping(ann) and isinstance(value, str):
        return _json_object(value, name)
    if not isinstance(value, list):
        return value
    if ann is None:
        return value
    if not _is_list(ann):
        return value[-1]  # a scalar flag given twice: the last one wins, as usual
    if len(value) == 1 and _accepts(ann, str):
        # "--target-modules all-linear" or a regex keeps the string form; a plain name is a list.
        single = value[0]
        if single.lower() == "all-linear" or _REGEX_CHARS.search(single):
            return single
    return value


def _json_object(text: str, name: str) -> Any:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag_name(name)}: expected a JSON object ({exc.msg} at column {exc.colno}) (got {text!r})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag_name(name)}: expected a JSON object (got {text!r})")
    return value


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
def unknown_message(name: str, known: Sequence[str], source: str = "") -> str:
    """``unknown argument --lerning-rate; did you mean --learning-rate?`` (YAML keys read as keys)."""
    if source == PYTHON:
        close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"unknown argument {name}{hint}"
    if source:
        key = name.lstrip("-").replace("-", "_")
        close = difflib.get_close_matches(key, list(known), n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"{source}: unknown key {key}{hint}"
    flag = flag_name(name.lstrip("-").replace("-", "_")) if name.startswith("-") else name
    if not name.startswith("-"):
        return f"unexpected argument {name!r} (a YAML config file must come first)"
    close = difflib.get_close_matches(flag, [flag_name(k) for k in known], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown argument {flag}{hint}"


def _error_line(err: Mapping[str, Any], where: str, annotation: Any) -> str:
    got = err.get("input")
    msg = err["msg"]
    if err["type"] == "literal_error" or (err["type"] == "enum" and annotation is not None):
        close = difflib.get_close_matches(str(got), _literal_values(annotation), n=1, cutoff=0.4)
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

    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, model, where)) from None


# -- the two-phase parse --------------------------------------------------------------------------
def _pop_option(argv: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` / ``flag=VALUE`` from ``argv`` and return VALUE (the last one wins)."""
    value = None
    i = 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i : i + 2]
        elif argv[i].startswith(flag + "="):
            value = argv.pop(i).split("=", 1)[1]
        else:
            i += 1
    return value


def _peek_option(argv: Sequence[str], flag: str) -> str | None:
    return _pop_option(list(argv), flag)


def _tuner_config_class(model: type[BaseModel], argv: Sequence[str], file_data: Mapping[str, Any],
                        source: str) -> type[BaseModel] | None:
    """Phase one: which tuner's fields become flags (``--tuner``, else the file, else the default)."""
    if "tuner_args" not in model.model_fields:
        return None
    from .. import registries

    name = _peek_option(argv, "--tuner") or file_data.get("tuner") or model.model_fields["tuner"].default
    try:
        return registries.tuners.get(str(name)).config_class
    except ConfigError:
        raise
    except Exception as exc:  # UnknownNameError names the installed tuners and close matches
        where = "--tuner" if _peek_option(argv, "--tuner") else f"{source}: tuner" if source else "--tuner"
        raise ConfigError(f"{where}: {exc}") from None


def command_parser(model: type[BaseModel], prog: str, tuner_config: type[BaseModel] | None = None,
                   description: str | None = None) -> argparse.ArgumentParser:
    from . import Parser

    doc = (model.__doc__ or "").strip().splitlines()[0]
    parser = Parser(prog=prog, description=description or doc.split(": ", 1)[-1],
                    allow_abbrev=False, usage=f"{prog} [CONFIG.yaml] [--flags ...]")
    parser.add_argument("--config", metavar="CONFIG.yaml", help="YAML file of arguments (flags override it); "
                        "may also be given as the first argument")
    build_flags(parser.add_argument_group(f"{prog.split()[-1]} options"), model, skip=["tuner_args"])
    if tuner_config is not None:
        name = tuner_config.model_fields["tuner"].default
        group = parser.add_argument_group(f"{name} tuner options (YAML: under tuner_args:)")
        build_flags(group, tuner_config, skip=["tuner", *model.model_fields], dest_prefix=TUNER_DEST)
    return parser


def parse_command(model: type[BaseModel], argv: Sequence[str], prog: str) -> BaseModel:
    """``[CONFIG.yaml] [--flags ...]`` -> a validated ``model``; errors are one-line ``ConfigError``."""
    argv = list(argv)
    config = argv.pop(0) if argv and not argv[0].startswith("-") else None
    config = _pop_option(argv, "--config") or config
    file_data = read_yaml(config) if config else {}
    source = str(config) if config else ""
    tuner_config = _tuner_config_class(model, argv, file_data, source)
    parser = command_parser(model, prog, tuner_config)
    ns, extras = parser.parse_known_args(argv)
    if extras:
        known = list(model.model_fields) + (list(tuner_config.model_fields) if tuner_config else [])
        raise ConfigError(unknown_message(extras[0].split("=", 1)[0], [k for k in known if k != "tuner_args"]))

    given = vars(ns)
    given.pop("config", None)
    data = dict(file_data)
    origins = {k: source for k in file_data}
    for dest, value in given.items():
        if not dest.startswith(TUNER_DEST):
            data[dest] = _from_flag(model.model_fields.get(dest), value, dest)
            origins[dest] = ""
    if tuner_config is not None:
        misplaced = [k for k in file_data if k in tuner_config.model_fields and k not in model.model_fields]
        if misplaced:
            raise ConfigError(f"{source}: {misplaced[0]} is a field of the tuner's config: put it under tuner_args:")
        data["tuner_args"] = _tuner_args(model, tuner_config, file_data, given, source)
        origins["tuner_args"] = source
    return validate(model, data, origins=origins)


def _tuner_args(model: type[BaseModel], config: type[BaseModel], file_data: Mapping[str, Any],
                given: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Merge ``tuner_args`` of the file with the tuner flags and validate them with the tuner's config."""
    from_file = file_data.get("tuner_args") or {}
    if not isinstance(from_file, Mapping):
        raise ConfigError(f"{source}: tuner_args: expected a mapping of {config.__name__} fields")
    args = {str(k).replace("-", "_"): v for k, v in from_file.items() if k != "tuner"}
    origins = {k: f"{source}: tuner_args" for k in args}
    for dest, value in given.items():
        if dest.startswith(TUNER_DEST):
            key = dest[len(TUNER_DEST):]
            args[key] = _from_flag(config.model_fields.get(key), value, key)
            origins[key] = ""
    name = config.model_fields["tuner"].default
    unknown = [k for k in args if k not in config.model_fields]
    if unknown:
        key = unknown[0]
        fields = [k for k in config.model_fields if k != "tuner"]
        hint = difflib.get_close_matches(key, fields, n=2, cutoff=0.6)
        misplaced = f"; did you mean {' or '.join(hint)}?" if hint else f" ({name} fields: {', '.join(fields)})"
        raise ConfigError(f"{origins[key] or source}: unknown {name} field {key}{misplaced}")

    def where(field: str) -> str:
        origin = origins.get(field, "")
        return f"{origin}.{field}" if origin else flag_name(field)

    try:
        cfg = config.model_validate({**args, "tuner": name})
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, config, where)) from None
    dumped = cfg.model_dump(mode="json")
    return {k: dumped[k] for k in args}


def from_python(schema: type[BaseModel], config: Any = None, /, **kwargs: Any) -> BaseModel:
    """The Python entry points' arguments: a model instance, a mapping or a YAML path, plus keywords.

    Keywords override the config's values (like flags override a file); errors name the keyword.
    """
    if isinstance(config, schema):
        data, source = config.model_dump(), ""
    elif isinstance(config, (str, Path)):
        data, source = read_yaml(config), str(config)
    elif isinstance(config, Mapping):
        data, source = {str(k).replace("-", "_"): v for k, v in config.items()}, ""
    elif config is None:
        data, source = {}, ""
    else:
        raise ConfigError(f"expected {schema.__name__}, a mapping or a YAML path, got {type(config).__name__}")
    origins = {k: source for k in data}
    for key, value in kwargs.items():
        data[key] = value
        origins[key] = PYTHON
    return validate(schema, data, origins=origins)
