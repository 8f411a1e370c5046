"""The built wheel: every subpackage on disk, the entry points, the package data, no generic
top-level names, and an install from it that imports and discovers its plugins.

The wheel is built offline from a copy of the build inputs (so stale ``build/`` output in the
checkout can neither hide nor add files) with the venv's setuptools: ``--no-isolation`` needs no
network. ``-x`` skips build's requirement check, which would ask for the ``wheel`` package that
setuptools >= 70.1 no longer needs.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> import package it becomes (pyproject's package-dir)
PACKAGE_DIRS = {"core": "swiftune", "tuners": "swiftune.tuners", "model_zoo": "swiftune.model_zoo"}
BUILD_INPUTS = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.py", "setup.cfg", *PACKAGE_DIRS]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _wheel_path(src: Path, root: str) -> str:
    """Where a file under a source folder lands in the wheel."""
    return "/".join([*PACKAGE_DIRS[root].split("."), *src.relative_to(ROOT / root).parts])


def _on_disk(pattern: str) -> list[tuple[str, Path]]:
    return [
        (root, p)
        for root in PACKAGE_DIRS
        for p in sorted((ROOT / root).rglob(pattern))
        if "__pycache__" not in p.parts
    ]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=SKIP)
        elif path.is_file():
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-x", "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (whl,) = out.glob("swiftune-*.whl")
    return whl


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def _dist_info(names: set[str], file: str) -> str:
    (path,) = [n for n in names if n.endswith(f".dist-info/{file}")]
    return path


def _read(wheel: Path, path: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(path).decode()


def test_every_subpackage_on_disk_is_in_the_wheel(names: set[str]) -> None:
    packages = _on_disk("__init__.py")
    assert len(packages) >= 5
    missing = [f"{root}/{p.parent.relative_to(ROOT / root)}" for root, p in packages if _wheel_path(p, root) not in names]
    assert not missing, f"subpackages missing from the wheel (add them to pyproject's packages): {missing}"


def test_every_module_on_disk_is_in_the_wheel(names: set[str]) -> None:
    missing = [str(p.relative_to(ROOT)) for root, p in _on_disk("*.py") if _wheel_path(p, root) not in names]
    assert not missing, f"modules missing from the wheel (a folder without __init__.py?): {missing}"


def test_package_data_is_in_the_wheel(names: set[str]) -> None:
    data = ROOT / "model_zoo" / "data"
    files = [(p, _wheel_path(p, "model_zoo")) for p in sorted(data.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    files += [(p, _wheel_path(p, "core")) for p in sorted((ROOT / "core" / "recipes" / "ds_config").glob("*.json"))]
    assert len(files) > 4
    missing = [str(p.relative_to(ROOT)) for p, where in files if where not in names]
    assert not missing, f"package data missing from the wheel (see [tool.setuptools.package-data]): {missing}"


def test_only_the_swiftune_package_is_installed(wheel: Path, names: set[str]) -> None:
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"swiftune", "swiftune-0.1.0.dist-info"}, tops
    assert _read(wheel, _dist_info(names, "top_level.txt")).split() == ["swiftune"]


def test_entry_points(wheel: Path, names: set[str]) -> None:
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.optionxform = str  # keep names' case
    eps.read_string(_read(wheel, _dist_info(names, "entry_points.txt")))
    assert dict(eps["console_scripts"]) == {"swiftune": "swiftune.cli:main"}
    plugins = dict(eps["swiftune"])
    assert plugins["lora"] == "swiftune.tuners.lora"
    assert plugins["model_zoo"] == "swiftune.model_zoo"
    for name, target in plugins.items():  # each built-in plugin's module ships in the wheel
        module = target.split(":")[0].replace(".", "/")
        assert f"{module}.py" in names or f"{module}/__init__.py" in names, (name, target)


def test_metadata(wheel: Path, names: set[str]) -> None:
    meta = _read(wheel, _dist_info(names, "METADATA"))
    assert "Name: swiftune\n" in meta and "Version: 0.1.0\n" in meta
    requires = [ln.split(":", 1)[1].strip() for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert any(r.startswith("torch") for r in requires) and any(r.startswith("pluggy") for r in requires)


def test_installed_wheel_imports_and_discovers_plugins(wheel: Path, tmp_path: Path) -> None:
    """A pure wheel unpacked on PYTHONPATH is an install; it must shadow the editable checkout."""
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    code = (
        "import importlib.util, json, swiftune\n"
        "from swiftune import registries\n"
        "print(json.dumps({'file': swiftune.__file__, 'tuners': registries.tuners.names(),\n"
        "  'plugins': {p.name: [p.distribution, p.errors] for p in registries.host.report()},\n"
        "  'generic': [n for n in ('core', 'tuners', 'model_zoo') if importlib.util.find_spec(n)]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SWIFTUNE_DISABLE_PLUGINS", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(seen["file"]).is_relative_to(target)
    assert "lora" in seen["tuners"]
    assert seen["plugins"]["lora"] == ["swiftune", []]
    assert seen["plugins"]["model_zoo"] == ["swiftune", []]
    assert seen["generic"] == []
