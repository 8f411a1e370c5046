"""``swiftune plugins`` and ``swiftune list``.

The plugin report is plain text, one line per plugin, so a failure (plugin, exception) can be
read, grepped and pasted into a bug report as is; ``--json`` gives the same data to programs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from .. import registries
from ..plugins import DISABLE_ENV, PluginInfo


def _status(p: PluginInfo) -> str:
    if p.disabled:
        return "disabled"
    return "ok" if p.ok else "FAILED"


def _detail(p: PluginInfo, warnings: list[str]) -> str:
    if p.disabled:
        return f"skipped ({DISABLE_ENV})"
    if p.errors:
        return " | ".join(p.errors)
    registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p.registered.items())
    return " | ".join([registered or "(registered nothing)", *(f"WARNING: {w}" for w in warnings)])


def run_plugins(as_json: bool = False) -> int:
    """Print every discovered plugin: name, distribution and version, status, what it registered or why it failed."""
    from ..peft_claims import claim_conflicts

    report = registries.host.report()
    warnings = claim_conflicts()  # peft_type claims that lose to, or tie with, another plugin's
    if as_json:
        rows = [{**asdict(p), "status": _status(p), "warnings": warnings.get(p.name, [])} for p in report]
        print(json.dumps(rows, indent=2))
        return 0
    rows = [(p.name, f"{p.distribution} {p.version}".strip() or "-", _status(p), _detail(p, warnings.get(p.name, [])))
            for p in report]
    header = ("plugin", "distribution", "status", "registered / error")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    failed = sum(1 for p in report if p.errors)
    disabled = sum(1 for p in report if p.disabled)
    conflicts = sum(len(w) for w in warnings.values())
    note = f"; {conflicts} peft_type claim conflict{'s' if conflicts > 1 else ''} (see WARNING)" if conflicts else ""
    print(f"{len(report)} plugins: {len(report) - failed - disabled} ok, {failed} failed, {disabled} disabled{note}")
    return 0


def run_list(what: str) -> int:
    """Print one registry: name, the plugin that registered it, a one-line description."""
    registry = registries.ALL[what]
    entries = registry.entries()
    for entry in entries:
        summary = (getattr(entry.obj, "__doc__", None) or "").strip().splitlines()
        description = getattr(entry.obj, "description", None) or (summary[0] if summary else "")
        if what == "models" and getattr(entry.obj, "task", "causal-lm") != "causal-lm":
            description = f"[{entry.obj.task}] {description}"
        if what == "models" and getattr(entry.obj, "trust_remote_code", False):
            description += " (loads only with --trust-remote-code)"
        print(f"{entry.name:24s} {entry.plugin:16s} {description}".rstrip())
    if not entries:
        print(f"no {registry.kind}s registered", file=sys.stderr)
    failed = registries.host.failures()
    if failed:
        print(f"note: plugin(s) {', '.join(sorted(failed))} failed to load; see 'swiftune plugins'", file=sys.stderr)
    return 0
