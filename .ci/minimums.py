#!/usr/bin/env python3
"""Print ``name==X`` for every dependency of pyproject.toml declared ``name>=X`` whose floor is tested.

``make test-min`` installs the project with these as pip constraints, so the lower bounds in
pyproject.toml are the versions the test-suite ran on, not a guess. The other dependencies
(pyyaml, rich, ...) resolve to their newest release.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

#: Libraries whose API swiftune leans on, so their floors are pinned and tested.
TESTED_FLOORS = ("torch", "transformers", "accelerate", "peft", "datasets", "pydantic", "bitsandbytes",
                 "trl", "fastapi", "diffusers")
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*[^;]*?>=\s*([0-9][0-9A-Za-z.]*)")


def floors(pyproject: Path) -> dict[str, str]:
    """Package -> its declared lower bound, over the dependencies and every extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    found: dict[str, str] = {}
    for requirement in requirements:
        match = _FLOOR.match(requirement)
        if match and match.group(1).lower() in TESTED_FLOORS:
            name, version = match.group(1).lower(), match.group(2)
            if found.setdefault(name, version) != version:
                sys.exit(f"{pyproject}: {name} has two lower bounds ({found[name]}, {version}); declare one")
    missing = sorted(set(TESTED_FLOORS) - set(found))
    if missing:
        sys.exit(f"{pyproject}: no lower bound declared for {', '.join(missing)}")
    return found


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    for name, version in sorted(floors(root / "pyproject.toml").items()):
        print(f"{name}=={version}")
