"""docs/architecture.md tells a new maintainer where each thing lives: every module of the core is
named there (a new module without a line in it fails here, naming the module)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_core_module_is_named_in_architecture_md():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(p for p in (ROOT / "core").rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(modules) > 50  # the walk found the core
    missing = [p.relative_to(ROOT).as_posix() for p in modules if f"{p.name}`" not in text and f"{p.name} " not in text]
    assert not missing, f"modules docs/architecture.md does not name (add each to its layer's row): {missing}"
