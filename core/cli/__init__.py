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
    p.add_argument("what", choices=["tuners", "models", "datasets", "templates", "dataset-adapters"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..errors import SwiftuneError

    try:
        if args.command == "plugins":
            from .plugins_cmd import run_plugins

            return run_plugins(as_json=args.json)
        if args.command == "list":
            from .plugins_cmd import run_list

            return run_list(args.what)
    except SwiftuneError as exc:
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
    parser.error(f"unknown command {args.command}")
    return 2
