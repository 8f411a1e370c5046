"""The CLI skeleton: a light ``--help``, ``swiftune list``, ``swiftune plugins``, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swiftune import cli, registries
from swiftune.cli import plugins_cmd
from swiftune.errors import UnknownNameError

SWIFTUNE_BIN = Path(sys.executable).with_name("swiftune")
HEAVY = ("torch", "transformers", "peft", "swiftune.tuners", "swiftune.model_zoo")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SWIFTUNE_BIN)] if SWIFTUNE_BIN.exists() else [sys.executable, "-m", "swiftune"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_help_imports_no_torch() -> None:
    proc = _run("--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: swiftune")
    for command in ("plugins", "list"):
        assert f"    {command} " in proc.stdout
    imported = [ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    assert "swiftune.cli" in imported  # the profile really covers the CLI
    heavy = [m for m in imported if m.startswith(HEAVY)]
    assert heavy == [], heavy


def test_python_dash_m_and_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "swiftune", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "swiftune 0.1.0"


def test_console_script_lists_tuners() -> None:
    proc = _run("list", "tuners")
    assert proc.returncode == 0, proc.stderr
    assert "lora" in [ln.split()[0] for ln in proc.stdout.splitlines()]


@pytest.mark.parametrize("what", ["tuners", "models", "datasets", "templates", "dataset-adapters"])
def test_list_prints_each_registered_name(what: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", what]) == 0
    out, err = capsys.readouterr()
    registry = registries.ALL[what]
    rows = [ln.split() for ln in out.splitlines()]
    assert [r[0] for r in rows] == registry.names()
    assert [r[1] for r in rows] == [e.plugin for e in registry.entries()]
    if not len(registry):
        assert f"no {registry.kind}s registered" in err
    if what == "tuners":
        assert "lora" in registry.names()


def test_plugins_json_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in report}
    assert sorted(by_name) == sorted(registries.host.plugins)
    assert by_name["lora"]["distribution"] == "swiftune"
    assert by_name["lora"]["status"] == "ok" and by_name["lora"]["registered"]["tuner"] == ["lora"]
    for p in report:
        assert p["status"] in {"ok", "FAILED", "disabled"}
        assert set(p) >= {"name", "distribution", "version", "module", "registered", "errors", "disabled"}


def test_plugins_text_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["plugin", "distribution", "status", "registered", "/", "error"]
    (lora,) = [ln for ln in lines if ln.startswith("lora ")]
    assert lora.split()[1:4] == ["swiftune", "0.1.0", "ok"] and lora.endswith("tuner: lora")
    assert lines[-1].startswith(f"{len(registries.host.plugins)} plugins: ")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["list"], "the following arguments are required: what"),
        (["list", "nope"], "invalid choice: 'nope'"),
        (["plugins", "--nope"], "unrecognized arguments: --nope"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and needle in err and "--help" in err
    assert err.startswith("swiftune")


def test_library_errors_are_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def unknown(what: str) -> int:
        raise UnknownNameError("unknown tuner 'x'; installed: lora")

    monkeypatch.setattr(plugins_cmd, "run_list", unknown)
    assert cli.main(["list", "tuners"]) == 2
    assert capsys.readouterr().err == "swiftune: error: unknown tuner 'x'; installed: lora\n"

    def crash(what: str) -> int:
        raise RuntimeError("disk on fire\nsecond line of detail")

    monkeypatch.setattr(plugins_cmd, "run_list", crash)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["list", "tuners"]) == 2
    err = capsys.readouterr().err
    assert err == f"swiftune: error: RuntimeError: disk on fire (set {cli.DEBUG_ENV}=1 for the traceback)\n"
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main(["list", "tuners"])


def test_unknown_list_error_from_subprocess_has_no_traceback() -> None:
    proc = _run("list", "tunerz")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    assert capsys.readouterr().out.startswith("usage: swiftune")
