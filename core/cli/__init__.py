"""The ``swiftune`` command line.

Start-up stays light: nothing here imports torch until a subcommand runs, so ``swiftune --help``
is fast. Each subcommand lives in its own module and is imported only when chosen.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser.error(f"unknown command {args.command}")
    return 2
