"""Fake third-party plugins, installed for real with ``pip install --target`` into a throwaway folder.

``build_site`` writes a small source distribution per plugin (``pyproject.toml`` with a
``[project.entry-points.swiftune]`` table, plus its module) and pip-installs them all into ``dest``
with ``--no-deps --no-build-isolation --no-index`` (no network; the venv's setuptools builds them).
Putting ``dest`` on ``PYTHONPATH`` then makes ``importlib.metadata`` see real entry points, exactly
as after ``pip install`` into an environment, while the test venv stays untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SWIFTUNE_BIN = Path(sys.executable).with_name("swiftune")

#: The broken fixture plugins (entry-point name) -> what their one ``swiftune plugins`` line must contain.
FAILING = {
    "brokenname": ["import failed", "ModuleNotFoundError", "swiftune_fixture_missing_dependency"],
    "raiser": ["register_tuners raised RuntimeError", "hook exploded"],
    "dupe": ["register_tuners raised DuplicateNameError", "tuner 'lora'", "plugin 'lora'", "plugin 'dupe'"],
    "upper": ["register_tuners raised ValueError", "'Shouty'", "lowercase"],
    "lora [swiftune-clash]": ["already used by distribution 'swiftune'"],
}


def swiftune_cli(*args: str, site: Path | None = None, disable: str | None = None,
                 **env: str) -> subprocess.CompletedProcess:
    """``swiftune ARGS`` in a subprocess with ``plugin_env``: ``site`` holds the installed fakes."""
    cmd = [str(SWIFTUNE_BIN)] if SWIFTUNE_BIN.exists() else [sys.executable, "-m", "swiftune"]
    return subprocess.run([*cmd, *args], env=plugin_env(site, disable, **env), capture_output=True, text=True,
                          timeout=300)


def plugin_env(site: Path | None = None, disable: str | None = None, **env: str) -> dict[str, str]:
    """A subprocess environment: offline, ``site`` as PYTHONPATH, ``SWIFTUNE_DISABLE_PLUGINS=disable``."""
    full = {k: v for k, v in os.environ.items() if k not in ("SWIFTUNE_DISABLE_PLUGINS", "PYTHONPATH")}
    full.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **env)
    if site is not None:
        full["PYTHONPATH"] = str(site)
    if disable is not None:
        full["SWIFTUNE_DISABLE_PLUGINS"] = disable
    return full

PYPROJECT = """[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "{version}"
dependencies = ["swiftune>=0.1,<0.2"]

[project.entry-points.swiftune]
{entry_point} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""


@dataclass(frozen=True)
class FakeDist:
    distribution: str
    entry_point: str
    module: str
    version: str = "0.1"


#: entry-point name -> what the plugin does (see each module's docstring).
DISTS = [
    FakeDist("swiftune-scale", "scale", "swt_scale"),  # a good third-party tuner
    FakeDist("swiftune-broken", "brokenname", "swt_broken_import"),  # fails to import
    FakeDist("swiftune-raiser", "raiser", "swt_raiser"),  # hook registers one tuner, then raises
    FakeDist("swiftune-dupe", "dupe", "swt_dupe"),  # registers the taken name 'lora'
    FakeDist("swiftune-upper", "upper", "swt_upper"),  # registers an upper-case name
    FakeDist("swiftune-off", "offplug", "swt_off"),  # good; disabled through the environment
    FakeDist("swiftune-clash", "lora", "swt_clash"),  # reuses the entry-point name 'lora'
    FakeDist("swiftune-reward", "brevity", "swt_reward"),  # a GRPO reward function (register_rewards)
]


def write_sources(dest: Path, dists: list[FakeDist] = DISTS) -> list[Path]:
    """One project folder per fake distribution under ``dest``; returns the folders."""
    projects = []
    for d in dists:
        project = dest / d.distribution
        project.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / f"{d.module}.py", project / f"{d.module}.py")
        (project / "pyproject.toml").write_text(PYPROJECT.format(**d.__dict__))
        projects.append(project)
    return projects


def pip_install_target(projects: list[Path], target: Path) -> None:
    """``pip install --target`` without network or dependencies (swiftune is already installed)."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--no-build-isolation", "--no-index", "--target", str(target), *map(str, projects)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install --target {target} failed:\n{proc.stderr[-3000:]}")


def build_site(dest: Path, dists: list[FakeDist] = DISTS) -> Path:
    """pip-install the fake distributions into ``dest`` (built once: reused when already there)."""
    done = dest / ".installed"
    if not done.is_file():
        pip_install_target(write_sources(dest.parent / f"{dest.name}-src", dists), dest)
        done.write_text("\n".join(d.distribution for d in dists))
    return dest
