"""``swiftune plugins`` and ``swiftune list``."""

from __future__ import annotations

import json
from dataclasses import asdict

from .. import registries


def run_plugins(as_json: bool = False) -> int:
    report = registries.host.report()
    if as_json:
        print(json.dumps([asdict(p) for p in report], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="swiftune plugins")
    for col in ("plugin", "distribution", "registered", "status"):
        table.add_column(col, overflow="fold")
    for p in report:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p.registered.items())
        status = "disabled" if p.disabled else ("ok" if p.ok else "FAILED: " + " | ".join(p.errors))
        dist = f"{p.distribution} {p.version}".strip()
        table.add_row(p.name, dist, registered or "-", status)
    Console(width=200).print(table)
    return 0


def run_list(what: str) -> int:
    registry = registries.ALL[what]
    for entry in registry.entries():
        summary = (getattr(entry.obj, "__doc__", None) or "").strip().splitlines()
        description = getattr(entry.obj, "description", None) or (summary[0] if summary else "")
        print(f"{entry.name:24s} {entry.plugin:16s} {description}")
    return 0
