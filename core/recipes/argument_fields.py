"""How a pydantic field's annotation reads on the command line: argparse's collection of a flag's
values, and their conversion back into what the field expects (lists, JSON objects, Literal
numbers from text). Shared by the argument router (``argument_sources.py``) and the CLI's parser
(``cli/args.py``)."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

from ..errors import ConfigError

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


def _literal_values(annotation: Any) -> list[Any]:
    values: list[Any] = []
    for a in _union_args(annotation):
        if typing.get_origin(a) is Literal:
            values += list(typing.get_args(a))
    return values


def _is_mapping(annotation: Any) -> bool:
    return all(typing.get_origin(a) is dict or a is dict for a in _union_args(annotation))


def _flag_kwargs(ann: Any) -> dict[str, Any]:
    """How argparse collects one field's values; pydantic converts them afterwards."""
    if _is_mapping(ann):
        return {"metavar": "JSON"}
    if _accepts(ann, bool):  # bare = true; or a value: true/false/yes/no/1/0 (or a folder, for bool | str)
        return {"nargs": "?", "const": "true", "metavar": "true|false" if _unwrap_optional(ann) is bool else "VALUE"}
    if _is_list(ann):  # --dataset a b --dataset c
        return {"nargs": "+", "action": "append", "metavar": "VALUE"}
    choices = [str(v) for v in _literal_values(ann)]
    return {"metavar": "|".join(choices) if choices else "VALUE"}


def _from_flag(field: Any, value: Any, name: str = "", raw: bool = True) -> Any:
    """Turn flag values (strings, lists of lists) into what the field expects; decode JSON objects."""
    ann = field.annotation if field is not None else None
    if ann is None:
        return value
    if raw and _is_mapping(ann) and isinstance(value, str):
        return _json_object(value, name)
    if raw and isinstance(value, list):
        value = [v for part in value for v in (part if isinstance(part, list) else [part])]
        if not _is_list(ann):
            value = value[-1] if value else "true"  # a scalar flag given twice: the last one wins
        elif len(value) == 1 and _accepts(ann, str):
            # "--target-modules all-linear" or a regex keeps the string form; a plain name is a list.
            single = value[0]
            if single.lower() == "all-linear" or _REGEX_CHARS.search(single):
                return single
    if isinstance(value, str):  # "8" for Literal[4, 8]: the literal whose text it is
        for literal in _literal_values(ann):
            if not isinstance(literal, str) and str(literal) == value.strip():
                return literal
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
