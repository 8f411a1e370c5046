"""Plugin discovery and isolation.

Real entry points come from small fixture distributions pip-installed (``--target``) into a
temporary folder put on PYTHONPATH (``plugin_fixtures.build_site``), discovered in a fresh subprocess, so laziness shows in
``sys.modules`` and the test session's registries stay untouched. Finer cases run in-process on an
isolated ``PluginHost`` with its own registries.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import swiftune
from swiftune import registries
from swiftune.errors import DuplicateNameError, PluginError, UnknownNameError
from swiftune.plugins import PluginHost
from swiftune.registry import Registry

from plugin_fixtures import HERE as FIXTURES
from plugin_fixtures import FAILING, plugin_env, swiftune_cli

@pytest.fixture(scope="module")
def scenario(site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What a fresh interpreter observes with every fake plugin installed and 'offplug' disabled."""
    run_dir = tmp_path_factory.mktemp("run")  # not the fixture folder: plugins must come from the site
    shutil.copy(FIXTURES / "scenario.py", run_dir / "scenario.py")
    proc = subprocess.run(
        [sys.executable, str(run_dir / "scenario.py")],
        env=plugin_env(site, "offplug, nothere"),
        cwd=run_dir,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- real entry points, fresh interpreter --------------------------------------------------------------
def test_discovery_is_lazy(scenario: dict) -> None:
    assert not any(scenario["after_import"].values()), scenario["after_import"]  # no torch, no plugin
    assert scenario["after_access"]["swiftune.tuners.lora"]
    assert scenario["after_access"]["swt_scale"]
    assert "lora" in scenario["tuners"]
    assert scenario["lora_is_builtin"]


def test_good_third_party_tuner_loads_and_works(scenario: dict) -> None:
    info = scenario["plugins"]["scale"]
    assert (info["distribution"], info["version"], info["errors"]) == ("swiftune-scale", "0.1", [])
    assert info["registered"] == {"tuner": ["scale"]}
    assert scenario["scale_plugin"] == "scale"
    nums = scenario["scale"]
    assert nums["identity_err"] == 0.0
    assert nums["scaled_err"] < 1e-6  # last layer scaled by 2 doubles the output
    assert nums["disabled_err"] == 0.0
    assert nums["trainable"] == ["model.0.scale.default", "model.2.scale.default"]
    assert nums["files"] == ["adapter_config.json", "adapter_model.safetensors"]
    assert nums["saved_tuner"] == "scale"
    assert nums["reload_err"] < 1e-6
    assert nums["merged_err"] < 1e-5 and nums["merged_type"] == "Linear"


def test_broken_plugins_are_isolated(scenario: dict) -> None:
    assert {"lora", "scale"} <= set(scenario["tuners"])
    assert not {"brokenname", "halfway", "dupeextra", "shouty", "offtuner"} & set(scenario["tuners"])
    for name, needles in FAILING.items():
        errors = " | ".join(scenario["plugins"][name]["errors"])
        for needle in needles:
            assert needle in errors, (name, errors)
        assert scenario["plugins"][name]["registered"] == {}


def test_hook_that_raises_keeps_nothing(scenario: dict) -> None:
    assert "halfway" not in scenario["tuners"]  # registered before the raise: discarded
    assert "dupeextra" not in scenario["tuners"]  # registered before the duplicate: discarded
    err = scenario["get_halfway"]
    assert err["type"] == "UnknownNameError"
    assert "plugin 'raiser' failed" in err["message"] and "hook exploded" in err["message"]


def test_unknown_name_points_at_the_broken_plugin(scenario: dict) -> None:
    err = scenario["get_brokenname"]
    assert err["type"] == "UnknownNameError"
    msg = err["message"]
    assert "unknown tuner 'brokenname'" in msg
    assert "plugin 'brokenname' failed: import failed: ModuleNotFoundError" in msg
    # the plugin named like the wanted name is cited first
    assert msg.index("plugin 'brokenname'") < msg.index("plugin 'dupe'")


def test_disabled_plugin_is_never_imported(scenario: dict) -> None:
    info = scenario["plugins"]["offplug"]
    assert info["disabled"] and info["errors"] == [] and info["registered"] == {}
    assert not scenario["after_access"]["swt_off"]
    assert "offplug" in scenario["get_offtuner"]["message"]
    assert "SWIFTUNE_DISABLE_PLUGINS" in scenario["get_offtuner"]["message"]


def test_entry_point_name_clash_is_reported_not_loaded(scenario: dict) -> None:
    assert scenario["plugins"]["lora"]["distribution"] == "swiftune"
    assert scenario["plugins"]["lora"]["errors"] == []
    assert not scenario["after_access"]["swt_clash"]


# -- the CLI over the same fake site ------------------------------------------------------------------
def test_cli_plugins_one_line_per_failure(site: Path) -> None:
    proc = swiftune_cli("plugins", site=site, disable="offplug")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    for name, needles in FAILING.items():
        mine = [ln for ln in lines if ln.startswith(name + " ")]
        assert len(mine) == 1, (name, lines)
        assert "FAILED" in mine[0] and all(n in mine[0] for n in needles), mine[0]
    (scale,) = [ln for ln in lines if ln.startswith("scale ")]
    assert "swiftune-scale 0.1" in scale and " ok " in scale and "tuner: scale" in scale
    (off,) = [ln for ln in lines if ln.startswith("offplug ")]
    assert "disabled" in off
    total, ok, failed = map(int, re.fullmatch(r"(\d+) plugins: (\d+) ok, (\d+) failed, 1 disabled", lines[-1]).groups())
    assert total == len(lines) - 2 == ok + failed + 1  # header and summary aside
    assert failed == sum(" FAILED " in ln for ln in lines) >= len(FAILING)


def test_cli_disable_two_plugins_json(site: Path) -> None:
    proc = swiftune_cli("plugins", "--json", site=site, disable="offplug,RAISER")
    assert proc.returncode == 0, proc.stderr
    report = {p["name"]: p for p in json.loads(proc.stdout)}
    assert report["offplug"]["status"] == report["raiser"]["status"] == "disabled"
    assert report["raiser"]["errors"] == []
    assert report["brokenname"]["status"] == "FAILED"
    assert report["scale"]["status"] == "ok" and report["scale"]["registered"] == {"tuner": ["scale"]}


def test_cli_list_tuners_with_broken_plugins(site: Path) -> None:
    proc = swiftune_cli("list", "tuners", site=site)
    assert proc.returncode == 0, proc.stderr
    names = [ln.split()[0] for ln in proc.stdout.splitlines()]
    assert {"lora", "offtuner", "scale"} <= set(names) and names == sorted(names)
    assert not {"halfway", "dupeextra", "shouty"} & set(names)
    assert "brokenname" in proc.stderr and "swiftune plugins" in proc.stderr


# -- an isolated host, in-process ----------------------------------------------------------------------
def _host(*eps: tuple[str, str]) -> tuple[PluginHost, Registry, Registry]:
    tuners = Registry("tuner", accepts=registries._is_tuner)
    models = Registry("model")
    host = PluginHost(
        {"register_tuners": [tuners], "register_models": [models]},
        entry_points=lambda: [md.EntryPoint(n, v, "swiftune") for n, v in eps],
    )
    return host, tuners, models


class _Model:
    def __init__(self, name: str) -> None:
        self.name = name


def test_staging_is_per_hook() -> None:
    from swiftune.tuners.lora import Lora

    class Half(Lora):
        name = "half"

    class Plugin:
        @swiftune.hookimpl
        def register_models(self, register):
            register(_Model("tiny-model"))

        @swiftune.hookimpl
        def register_tuners(self, register):
            register(Half)
            raise RuntimeError("boom")

    host, tuners, models = _host(("lora", "swiftune.tuners.lora"))
    info = host.add_plugin(Plugin(), "mixed")
    assert tuners.names() == ["lora"]
    assert models.names() == ["tiny-model"]
    assert info.registered == {"model": ["tiny-model"]}
    assert info.errors == ["register_tuners raised RuntimeError: boom"]


@pytest.mark.parametrize("bad", ["Lora", "", "has space", "-dash", "ünï", 3, None])
def test_names_must_be_lowercase_identifiers(bad: object) -> None:
    reg = Registry("model")
    with pytest.raises(ValueError, match="must be lowercase"):
        reg.add(_Model(bad), "p")  # type: ignore[arg-type]
    assert reg.add(_Model("qwen2.5-0_5b"), "p") == "qwen2.5-0_5b"


def test_duplicate_and_reregistration() -> None:
    reg = Registry("model")
    a = _Model("same")
    reg.add(a, "first")
    reg.add(a, "second")  # the same object again: allowed, stays attributed to 'first'
    assert reg.entry("same").plugin == "first"
    reg.remove_plugin("second")
    assert "same" in reg
    with pytest.raises(DuplicateNameError, match="plugin 'first' and plugin 'third'"):
        reg.add(_Model("same"), "third")
    assert reg.get("SAME") is a  # lookups ignore case


def test_invalid_plugins_are_reported() -> None:
    class WrongArg:
        @swiftune.hookimpl
        def register_tuners(self, reg):  # not the spec's argument name
            pass

    class WrongType:
        @swiftune.hookimpl
        def register_tuners(self, register):
            register("not a tuner class")

    host, tuners, _ = _host(("lora", "swiftune.tuners.lora"), ("gone", "swiftune_no_such_module_xyz"))
    bad_arg = host.add_plugin(WrongArg(), "wrongarg")
    bad_type = host.add_plugin(WrongType(), "wrongtype")
    assert bad_arg.errors and bad_arg.errors[0].startswith("invalid plugin: PluginValidationError")
    assert bad_type.errors == ["register_tuners raised TypeError: register_tuners expects a tuner, got 'not a tuner class'"]
    assert host.plugins["gone"].errors[0].startswith("import failed: ModuleNotFoundError")
    assert tuners.names() == ["lora"]
    with pytest.raises(PluginError, match="'wrongarg' is already loaded"):
        host.add_plugin(WrongArg(), "wrongarg")
    host.remove_plugin("wrongtype")
    assert "wrongtype" not in host.failures()


def test_unknown_name_suggests_close_names() -> None:
    host, tuners, _ = _host(("lora", "swiftune.tuners.lora"))
    with pytest.raises(UnknownNameError, match="Did you mean: lora") as exc:
        tuners.get("lroa")
    assert "installed: lora" in str(exc.value)
    assert not str(exc.value).startswith("'")  # not KeyError's quoted repr


def test_first_access_from_two_threads_waits_for_discovery() -> None:
    calls = []

    def slow_entry_points():
        calls.append(1)
        time.sleep(0.3)
        return [md.EntryPoint("lora", "swiftune.tuners.lora", "swiftune")]

    tuners = Registry("tuner", accepts=registries._is_tuner)
    PluginHost({"register_tuners": [tuners]}, entry_points=slow_entry_points)
    seen: list[list[str]] = []
    first = threading.Thread(target=lambda: seen.append(tuners.names()))
    first.start()
    time.sleep(0.05)
    seen.append(tuners.names())  # arrives while the first thread is discovering
    first.join()
    assert seen == [["lora"], ["lora"]] and calls == [1]


def test_reload_discovers_again() -> None:
    host, tuners, _ = _host(("lora", "swiftune.tuners.lora"))
    assert tuners.names() == ["lora"]
    host.reload()
    assert tuners.names() == ["lora"]
    assert [p.name for p in host.report()] == ["lora"]
