"""One pydantic model per command serves flags, a YAML file and Python calls.

``parse_command`` reads ``[CONFIG.yaml] [--flags ...]`` in two phases: first the tuner name (from
``--tuner`` or the file), then a parser with the command's fields plus that tuner's config fields
(``--r 16 --lora-alpha 32``). The file and the flags are merged (flags win) and validated once, so
every error reads the same way: one line naming the flag or the YAML key, with a suggestion.

Spelling: every flag works in kebab-case and snake_case (``--learning-rate``, ``--learning_rate``);
a yes/no field takes no value, a value (``true/false/1/0/yes/no``) or a ``--no-`` form; a list field
takes several values and may repeat (``--dataset a b --dataset c``). ms-swift's names are aliases
(``recipes/aliases.py``) in flags, YAML keys and Python keywords alike. Tuner fields may sit at the
top level of a YAML file (as in ms-swift's) or under ``tuner_args:``.

Routing and validation are ``swiftune.recipes.argument_sources`` (the Python calls use them without
the CLI); this module adds the flags: building the parser and reading ``argv``.
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

import yaml
from pydantic import BaseModel

from ..errors import ConfigError
from ..recipes import aliases
from ..recipes.argument_fields import _accepts, _flag_kwargs, flag_name
from ..recipes.argument_sources import (
    Given,
    _finish,
    _items,
    _known,
    _tuner_config,
    from_python,
    read_yaml,
    route,
    unknown_message,
    validate,
)

__all__ = ["build_flags", "command_parser", "flag_name", "from_python", "parse_command", "read_yaml",
           "unknown_message", "validate"]

TUNER_DEST = "tuner_args."
ALIAS_DEST = "alias."


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


def _flag_items(given: Mapping[str, Any]) -> list[Given]:
    items = []
    for dest, value in given.items():
        name = dest.split(".", 1)[1] if dest.startswith((TUNER_DEST, ALIAS_DEST)) else dest
        items.append(Given(name, value, flag_name(name), "", raw=True))
    return items


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
