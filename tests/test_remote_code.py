"""Code shipped with a checkpoint runs only when the user asks: not because a model family needs
it, not because an adapter names such a folder as its base. Each shipped file touches a marker
when imported, so "no code ran" is checked, not assumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swiftune import Swift
from swiftune.cli.args import parse_command
from swiftune.loading import load_model
from swiftune.loading.remote_code import TRUST_ENV, RemoteCodeError
from swiftune.recipes.arguments import COMMANDS
from swiftune.recipes.rebuild import rebuild

from cli_fixtures import run_cli, save_tiny_model

CONFIG_PY = """
import pathlib
pathlib.Path({marker!r}).touch()
from transformers import LlamaConfig

class QWenConfig(LlamaConfig):
    model_type = "qwen"
"""
MODELING_PY = """
import pathlib
pathlib.Path({marker!r}).touch()
from transformers import LlamaForCausalLM
from .configuration_qwen import QWenConfig

class QWenLMHeadModel(LlamaForCausalLM):
    config_class = QWenConfig
"""


def remote_code_model(folder: Path) -> tuple[Path, Path]:
    """A tiny llama dressed as a first-generation Qwen checkpoint (a family that needs remote code):
    its config's auto_map names its own .py files. Returns (folder, marker the files touch)."""
    save_tiny_model(folder)
    marker = folder.parent / f"{folder.name}-code-ran"
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="qwen", architectures=["QWenLMHeadModel"],
                  auto_map={"AutoConfig": "configuration_qwen.QWenConfig",
                            "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_qwen.py").write_text(CONFIG_PY.format(marker=str(marker)))
    (folder / "modeling_qwen.py").write_text(MODELING_PY.format(marker=str(marker)))
    return folder, marker


def assert_names_everything(message: str, folder: Path) -> None:
    for part in (str(folder), "configuration_qwen.py", "modeling_qwen.py", "--trust-remote-code", TRUST_ENV):
        assert part in message, (part, message)


def test_a_family_that_needs_remote_code_does_not_switch_it_on(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    folder, marker = remote_code_model(tmp_path / "qwen-like")
    with pytest.raises(RemoteCodeError) as info:
        load_model(folder)
    assert_names_everything(str(info.value), folder)
    assert not marker.exists(), "the checkpoint's code ran without permission"


def test_remote_code_runs_when_asked(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    folder, marker = remote_code_model(tmp_path / "asked")
    model, _ = load_model(folder, trust_remote_code=True)
    assert type(model).__name__ == "QWenLMHeadModel" and marker.exists()

    folder, marker = remote_code_model(tmp_path / "by-env")
    monkeypatch.setenv(TRUST_ENV, "1")
    model, _ = load_model(folder)
    assert type(model).__name__ == "QWenLMHeadModel" and marker.exists()


def test_a_native_architecture_loads_without_running_its_shipped_files(tmp_path, monkeypatch) -> None:
    """An auto_map that is only an alternative to a class transformers has: no error, no code run."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    folder, marker = remote_code_model(tmp_path / "native")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    model, _ = load_model(folder)
    assert type(model).__name__ == "LlamaForCausalLM" and not marker.exists()


def adapter_naming(base: Path, folder: Path) -> Path:
    """A LoRA adapter (trained on a plain tiny llama) whose adapter_config.json names ``base``."""
    plain, _ = load_model(save_tiny_model(folder.parent / "plain"))
    Swift.prepare(plain, {"tuner": "lora", "r": 2, "target_modules": ["q_proj"]}).save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_an_adapter_cannot_make_its_base_model_run_code(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    base, marker = remote_code_model(tmp_path / "evil-base")
    adapter = adapter_naming(base, tmp_path / "downloaded-adapter")
    with pytest.raises(RemoteCodeError) as info:
        rebuild([str(adapter)])
    assert_names_everything(str(info.value), base)
    assert str(adapter) in str(info.value)
    assert not marker.exists()


@pytest.mark.slow
def test_infer_command_refuses_an_adapter_whose_base_runs_code(tmp_path) -> None:
    base, marker = remote_code_model(tmp_path / "evil-base")
    adapter = adapter_naming(base, tmp_path / "downloaded-adapter")
    proc = run_cli("infer", "--adapter", str(adapter), "--input", str(tmp_path / "in.jsonl"),
                   "--output", str(tmp_path / "out.jsonl"), env={TRUST_ENV: ""})
    assert proc.returncode == 2 and "--trust-remote-code" in proc.stderr and "modeling_qwen.py" in proc.stderr, proc.stderr
    assert not marker.exists()


def test_every_command_takes_the_flag() -> None:
    for command, schema in COMMANDS.items():  # later commands too: the flag lives on the shared base
        assert schema.model_fields["trust_remote_code"].default is False, command
    for command, extra in (("sft", []), ("infer", []), ("export", ["--output", "x"])):
        args = parse_command(COMMANDS[command], ["--trust-remote-code", *extra], prog=f"swiftune {command}")
        assert args.trust_remote_code is True and args.allows_remote_code() is True
        assert parse_command(COMMANDS[command], extra, prog=command).allows_remote_code() is None


def test_list_models_says_which_families_need_remote_code(capsys) -> None:
    from swiftune import registries
    from swiftune.cli.plugins_cmd import run_list

    run_list("models")
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    needing = [name for name, family in registries.models.items() if family.trust_remote_code]
    assert "qwen" in needing
    for name in needing:
        assert "--trust-remote-code" in lines[name], lines[name]
    assert not any("--trust-remote-code" in line for name, line in lines.items() if name not in needing)


def test_modelscope_datasets_never_run_their_loading_script(monkeypatch) -> None:
    """MsDataset.load can run a dataset repository's own script; swiftune asks it not to."""
    import sys
    import types

    from swiftune.data.hub import load_ms

    seen = {}

    class MsDataset:
        @staticmethod
        def load(dataset_id, split=None, subset_name=None, trust_remote_code=True):
            seen.update(dataset_id=dataset_id, split=split, trust_remote_code=trust_remote_code)
            return [{"text": "a row"}]

    module = types.ModuleType("modelscope.msdatasets")
    module.MsDataset = MsDataset
    monkeypatch.setitem(sys.modules, "modelscope.msdatasets", module)
    raw = load_ms("owner/data", None, "train")
    assert seen == {"dataset_id": "owner/data", "split": "train", "trust_remote_code": False}
    assert raw.origin == "ms::owner/data:train"
