"""Third-party plugins as a user meets them: pip-installed, discovered, isolated when broken.

The two example plugins (plugins/swiftune-ia3, plugins/swiftune-example-zoo) are pip-installed into
the test venv by ``make setup``; the broken fixture plugins are pip-installed into a throwaway
folder (``plugin_fixtures.build_site``, shared with test_plugins.py) and put on PYTHONPATH of a
``swiftune`` subprocess, so the venv never holds them. Also: start-up cost, the author's guide
example, and ``swiftune plugin new`` (generated, installed, its own tests run).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swiftune import registries
from swiftune.cli.scaffold import module_name, new_plugin, render
from swiftune.errors import ConfigError, UnknownNameError
from swiftune.plugins import PluginHost
from swiftune.registry import Registry

from plugin_fixtures import FAILING, pip_install_target, swiftune_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"swiftune-ia3": "ia3", "swiftune-example-zoo": "example_zoo"}  # distribution -> entry point


@pytest.fixture(scope="module", autouse=True)
def examples_installed() -> None:
    missing = [d for d in EXAMPLES if not _installed(d)]
    if missing:
        pytest.fail(f"example plugins {missing} are not installed in this environment: run 'make setup'")


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return True


# -- installed like a user installs them -----------------------------------------------------------------
@pytest.mark.parametrize("dist", EXAMPLES)
def test_example_plugins_are_real_installed_distributions(dist: str) -> None:
    d = md.distribution(dist)
    (ep,) = [e for e in d.entry_points if e.group == "swiftune"]
    assert ep.name == EXAMPLES[dist]
    assert d.requires and any(re.fullmatch(r"swiftune\s*(<0\.2,\s*>=0\.1|>=0\.1,\s*<0\.2)", r) for r in d.requires), d.requires
    module = ep.load()
    # a regular install (site-packages), not the source folder on a path
    assert ROOT / "plugins" not in Path(module.__file__).resolve().parents, module.__file__
    info = {p.name: p for p in registries.host.report()}[ep.name]
    assert info.ok and info.distribution == dist and info.version == d.version


def test_plugins_report_lists_the_examples() -> None:
    proc = swiftune_cli("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    report = {p["name"]: p for p in json.loads(proc.stdout)}
    assert report["ia3"]["registered"] == {"tuner": ["ia3"]} and report["ia3"]["status"] == "ok"
    assert report["example_zoo"]["registered"] == {
        "model": ["zephyr"], "template": ["zephyr"], "dataset adapter": ["dialogue-lines"], "dataset": ["example-dialogues"],
    }


# -- isolation with real broken plugins installed next to them ----------------------------------------------
def test_broken_plugins_leave_the_cli_and_the_examples_working(site: Path) -> None:
    proc = swiftune_cli("plugins", site=site)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    for name, needles in FAILING.items():  # one line per failure: plugin, status, exception
        (line,) = [ln for ln in lines if ln.startswith(name + " ")]
        assert " FAILED " in line and all(n in line for n in needles), line
    for name in ("ia3", "example_zoo", "scale", "lora"):
        (line,) = [ln for ln in lines if re.match(rf"{re.escape(name)}\s\s", ln)]  # not 'lora [swiftune-clash]'
        assert " ok " in line, line
    tuners = swiftune_cli("list", "tuners", site=site)
    assert {"ia3", "scale", "lora"} <= {ln.split()[0] for ln in tuners.stdout.splitlines()}
    assert "failed to load" in tuners.stderr and "brokenname" in tuners.stderr
    models = swiftune_cli("list", "models", site=site)
    assert "zephyr" in {ln.split()[0] for ln in models.stdout.splitlines()}


def test_a_name_of_a_broken_plugin_says_which_plugin_failed_and_why(site: Path) -> None:
    proc = swiftune_cli("sft", "--tuner", "brokenname", site=site)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "unknown tuner 'brokenname'" in line
    assert "plugin 'brokenname' failed: import failed: ModuleNotFoundError" in line
    assert "swiftune_fixture_missing_dependency" in line
    proc = swiftune_cli("sft", "--tuner", "halfway", site=site)  # registered by 'raiser' before its hook raised
    assert "plugin 'raiser' failed: register_tuners raised RuntimeError: hook exploded" in proc.stderr


def test_disable_env_skips_the_ia3_plugin(site: Path) -> None:
    proc = swiftune_cli("list", "tuners", site=site, disable="ia3")
    names = {ln.split()[0] for ln in proc.stdout.splitlines()}
    assert "ia3" not in names and {"lora", "scale"} <= names
    plugins = {p["name"]: p for p in json.loads(swiftune_cli("plugins", "--json", disable="ia3").stdout)}
    assert plugins["ia3"]["status"] == "disabled" and plugins["example_zoo"]["status"] == "ok"
    proc = swiftune_cli("sft", "--tuner", "ia3", disable="ia3")
    assert proc.returncode == 2
    assert "unknown tuner 'ia3'" in proc.stderr and "Disabled by SWIFTUNE_DISABLE_PLUGINS: ia3" in proc.stderr


def test_an_uninstalled_tuner_lists_the_installed_ones_and_close_matches() -> None:
    # The real entry points of this environment minus the ia3 distribution: as if never installed.
    eps = [ep for ep in md.entry_points(group="swiftune") if ep.dist is None or ep.dist.metadata["Name"] != "swiftune-ia3"]
    tuners = Registry("tuner", accepts=registries._is_tuner)
    PluginHost({"register_tuners": [tuners]}, entry_points=lambda: eps)
    with pytest.raises(UnknownNameError) as exc:
        tuners.get("ia3")
    installed = ", ".join(n for n in registries.tuners.names() if n != "ia3")
    assert str(exc.value) == f"unknown tuner 'ia3'; installed: {installed}"
    with pytest.raises(UnknownNameError, match=r"unknown tuner 'lroa'; installed: .*Did you mean: lora, qlora\?"):
        tuners.get("lroa")
    proc = swiftune_cli("sft", "--tuner", "ia4")  # installed: the CLI suggests it
    assert proc.returncode == 2 and "unknown tuner 'ia4'; installed: " in proc.stderr and "Did you mean: ia3" in proc.stderr


# -- start-up ------------------------------------------------------------------------------------------------
def test_help_imports_no_torch_and_no_plugin() -> None:
    code = (
        "import sys, json\nfrom swiftune.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'swiftune_ia3', 'swiftune.tuners.lora') if m in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def _wall(*args: str) -> float:
    start = time.perf_counter()
    proc = swiftune_cli(*args)
    assert proc.returncode == 0, proc.stderr
    return time.perf_counter() - start


def test_help_is_fast_and_plugins_timed() -> None:
    help_s = min(_wall("--help") for _ in range(3))
    plugins_s = _wall("plugins")
    print(f"\nswiftune --help: {help_s:.2f} s; swiftune plugins: {plugins_s:.2f} s")
    assert help_s < 1.0, f"swiftune --help took {help_s:.2f} s (best of 3)"


# -- the author's guide and the scaffold ---------------------------------------------------------------------
def _guide_example() -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    match = re.search(r"<!-- example: swiftune plugin new tinylora -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/plugins.md lost its marked complete example"
    return match.group(1)


def test_guide_example_is_the_scaffold_and_under_100_lines() -> None:
    example = _guide_example()
    assert example == render("tinylora")[f"{module_name('tinylora')}/__init__.py"]
    assert len(example.splitlines()) < 100


def test_scaffold_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    for bad in ("Upper", "1abc", "has space", "a--b", ""):
        with pytest.raises(ConfigError, match="plugin name"):
            render(bad)
    new_plugin("my-tuner", tmp_path)
    assert (tmp_path / "swiftune-my-tuner" / "swiftune_my_tuner" / "__init__.py").is_file()
    with pytest.raises(ConfigError, match="already exists"):
        new_plugin("my-tuner", tmp_path)


@pytest.mark.slow
def test_scaffolded_plugin_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    proc = swiftune_cli("plugin", "new", "tinylora", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "swiftune-tinylora"
    site = tmp_path / "site"
    pip_install_target([project], site)
    listed = swiftune_cli("list", "tuners", site=site)
    assert "tinylora" in {ln.split()[0] for ln in listed.stdout.splitlines()}, listed.stdout
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # Its whole suite (47 passed, 3 skipped) takes minutes on 2 cores: here the conformance checks on the
    # llama and MLP models plus the plugin's own tests.
    select = "llama or mlp or registered or rank"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select, "tests"], cwd=project,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 15 and "failed" not in summary, summary  # conformance cases and its own tests
