"""The ``swiftune`` command line.

Start-up stays light: nothing here imports torch until a subcommand runs, so ``swiftune --help``
is fast. Each subcommand lives in its own module and is imported only when chosen.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

from .. import __version__

#: Set to 1 to get the full traceback of an unexpected error instead of its one-line summary.
DEBUG_ENV = "SWIFTUNE_DEBUG"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="swiftune",
        description="Parameter-efficient fine-tuning with pluggable tuners (PEFT-compatible on disk).",
    )
    parser.add_argument("--version", action="version", version=f"swiftune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins, what they registered and their errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("list", help="list the registered tuners, models, datasets or templates")
    p.add_argument("what", choices=["tuners", "models", "datasets", "templates", "dataset-adapters", "rewards"])

    p = sub.add_parser("plugin", help="plugin author tools: 'swiftune plugin new NAME' writes a working tuner plugin")
    plugin_sub = p.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    new = plugin_sub.add_parser("new", help="write swiftune-NAME/ (pyproject, tuner module, tests) that passes its tests")
    new.add_argument("name", help="the tuner's registered name (lowercase; '-' becomes '_' in the module name)")
    new.add_argument("--dir", default=".", help="folder to create swiftune-NAME/ in (default: current folder)")
    # The recipe commands parse their own flags (they depend on the chosen tuner); listed for --help.
    for name, text in RECIPES.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


#: Commands whose flags come from their pydantic argument model (see ``args.parse_command``).
RECIPES = {
    "sft": "fine-tune a model with a tuner (swiftune sft [CONFIG.yaml] [--flags]; no arguments: the demo)",
    "infer": "chat with, or batch-generate from, a model and its adapters",
    "export": "merge adapters into the base model and save a plain transformers model",
    "rlhf": "preference tuning on TRL: --rlhf_type dpo|orpo|kto|simpo|cpo|grpo (flags and YAML as sft)",
    "deploy": "serve a model and its adapters over an OpenAI-compatible HTTP API",
    "eval": "score the base model and each adapter on the same data (answers, multiple choice, perplexity)",
}


#: Python names of the recipe calls where the command's name is a Python builtin.
CALL_NAMES = {"eval": "evaluate"}


def run_recipe(command: str, argv: Sequence[str]) -> int:
    """Parse the command's arguments, then run it (torch is imported only here)."""
    from ..recipes.commands import COMMANDS
    from .args import parse_command

    arguments = parse_command(COMMANDS[command], argv, prog=f"swiftune {command}")
    from ..recipes import calls

    getattr(calls, CALL_NAMES.get(command, command))(arguments)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in RECIPES:
        return _guarded(lambda: run_recipe(argv[0], argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    code = _guarded(lambda: _run_builtin(args))
    if code is None:
        parser.error(f"unknown command {args.command}")
    return code


def _run_builtin(args: argparse.Namespace) -> int | None:
    if args.command == "plugins":
        from .plugins_cmd import run_plugins

        return run_plugins(as_json=args.json)
    if args.command == "list":
        from .plugins_cmd import run_list

        return run_list(args.what)
    if args.command == "plugin":
        from .scaffold import new_plugin

        root = new_plugin(args.name, args.dir)
        print(f"wrote {root}/ (tuner '{args.name}')\nnext: pip install -e '{root}[test]' && pytest {root}/tests")
        return 0
    return None


def _guarded(run) -> int | None:
    """Run a command; a user sees one line per error, not a traceback (SWIFTUNE_DEBUG=1 shows it)."""
    from ..errors import SwiftuneError

    try:
        return run()
    except SwiftuneError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"swiftune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("swiftune: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a user sees one line, not a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"swiftune: error: {type(exc).__name__}: {first} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 2
