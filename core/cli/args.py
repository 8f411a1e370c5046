"""One pydantic model per command serves flags, a YAML file and Python calls.

``build_flags`` turns a model's fields into argparse flags (kebab-case of the field names);
``parse_command`` merges a YAML file and the flags (flags win) and validates once, so every error
reads the same way: one line naming the field, with a suggestion for a mistyped flag.
"""

from __future__ import annotations

import argparse
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_list(annotation: Any) -> bool:
    ann = _unwrap_optional(annotation)
    if typing.get_origin(ann) in (list, tuple, set):
        return True
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return any(typing.get_origin(a) in (list, tuple) for a in typing.get_args(ann))
    return False


def build_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, model: type[BaseModel],
                skip: Sequence[str] = (), dest_prefix: str = "") -> list[str]:
    """Add one flag per field of ``model``; returns the flag names added.

    Values stay strings here (defaults are SUPPRESSed so only given flags appear); pydantic does
    the conversion, so a flag, a YAML value and a Python argument are validated by one rule.
    """
    added = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        ann = field.annotation
        help_text = (field.description or "").replace("%", "%%")
        default = field.default if field.default is not None else None
        if default is not None and not isinstance(default, (dict, list)):
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": dest_prefix + name, "default": argparse.SUPPRESS, "help": help_text}
        base = _unwrap_optional(ann)
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif _is_list(ann):
            kwargs["action"] = "append"
            kwargs["metavar"] = "VALUE"
        elif typing.get_origin(base) is Literal:
            kwargs["choices"] = [str(c) for c in typing.get_args(base)]
        else:
            kwargs["metavar"] = name.upper()
        parser.add_argument(flag_name(name), **kwargs)
        added.append(flag_name(name))
    return added


def _flatten_single(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """A list flag given once with a non-list field type keeps its single value."""
    out = {}
    for k, v in data.items():
        field = model.model_fields.get(k)
        if isinstance(v, list) and field is not None and len(v) == 1 and not _is_list(field.annotation):
            v = v[0]
        # "--target-modules all-linear" on a `str | list[str]` field means the string form.
        if isinstance(v, list) and len(v) == 1 and field is not None and _accepts_str(field.annotation):
            v = v[0]
        out[k] = v
    return out


def _accepts_str(annotation: Any) -> bool:
    ann = _unwrap_optional(annotation)
    if ann is str:
        return True
    return typing.get_origin(ann) in (typing.Union, types.UnionType) and str in typing.get_args(ann)


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


def validate(model: type[BaseModel], data: Mapping[str, Any], source: str = "") -> BaseModel:
    """Validate with one readable line per problem, naming the flag / YAML key."""
    unknown = [k for k in data if k not in model.model_fields]
    if unknown:
        raise ConfigError(unknown_message(unknown[0], list(model.model_fields), source))
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "(arguments)"
            where = f"{source}: " if source else ""
            lines.append(f"{where}{flag_name(field)}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def unknown_message(name: str, known: Sequence[str], source: str = "") -> str:
    flag = flag_name(name.lstrip("-").replace("-", "_"))
    candidates = [flag_name(k) for k in known]
    close = difflib.get_close_matches(flag, candidates, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    where = f"{source}: " if source else ""
    return f"{where}unknown argument {flag}{hint}"
