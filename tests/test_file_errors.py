"""Every error caused by a file names that file, and adapter files get the folder's usual permissions.

A user who meets "Error while deserializing header" or "File too large" must learn which of the
many files of a run folder is at fault.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from swiftune import AdapterLoadError, Swift  # noqa: E402
from swiftune.errors import SwiftuneError  # noqa: E402
from swiftune.serialization import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402
from tiny_lms import llama  # noqa: E402

LORA = {"tuner": "lora", "r": 4, "target_modules": ["q_proj", "v_proj"], "init_lora_weights": False}


def saved(folder: Path) -> Path:
    Swift.prepare(llama(), dict(LORA)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_weights_file_is_named(tmp_path: Path, damage: str) -> None:
    folder = saved(tmp_path / "adapter")
    weights = folder / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not safetensors" * 10,
                         "empty": b""}[damage])
    with pytest.raises(AdapterLoadError) as info:
        Swift.from_pretrained(llama(), folder)
    assert str(weights) in str(info.value)


def test_an_unreadable_config_is_named(tmp_path: Path) -> None:
    folder = saved(tmp_path / "adapter")
    (folder / CONFIG_NAME).write_bytes(b"\xff\xfe{not json")
    with pytest.raises(AdapterLoadError) as info:
        Swift.from_pretrained(llama(), folder)
    assert str(folder / CONFIG_NAME) in str(info.value)


def test_adapter_files_get_the_permissions_of_other_files(tmp_path: Path) -> None:
    """A temporary file made by ``mkstemp`` is 0600; renamed into place, the adapter was unreadable
    to the group / others while every other file of the folder (tokenizer, args.json) was not."""
    old = os.umask(0o022)
    try:
        folder = saved(tmp_path / "adapter")
        (folder / "plain.txt").write_text("written by open()")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((folder / name).stat().st_mode)  # noqa: E731
    assert mode("plain.txt") == 0o644
    assert mode(WEIGHTS_NAME) == mode(CONFIG_NAME) == mode("plain.txt")


_SAVE_UNDER_A_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from tiny_lms import llama
    from swiftune import Swift
    model = Swift.prepare(llama(hidden=128), {"tuner": "lora", "r": 64, "target_modules": "all-linear"})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
    try:
        model.save_pretrained(sys.argv[1])
    except Exception as exc:
        print(type(exc).__name__, exc)
""")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_file_too_large_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    proc = subprocess.run([sys.executable, "-c", _SAVE_UNDER_A_SIZE_LIMIT, str(out), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "too large" in proc.stdout.lower(), proc.stdout
    assert str(out / WEIGHTS_NAME) in proc.stdout, proc.stdout
    assert not (out / WEIGHTS_NAME).exists()  # nothing half-written under the real name
    assert not list(out.glob(".*tmp"))  # and no temporary left behind


def test_run_log_errors_name_file_and_line(tmp_path: Path) -> None:
    from swiftune.recipes.callbacks import read_log

    log = tmp_path / "logging.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(SwiftuneError) as info:
        read_log(log)
    assert f"{log} line 2" in str(info.value)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_checkpoint_that_cannot_be_written_is_named_and_not_published(tmp_path: Path) -> None:
    """The adapter (32 KiB) fits under the limit, the optimizer state (twice that) does not."""
    import resource
    import signal

    from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model

    model, data = ensure_model(tmp_path / "assets"), ensure_data(tmp_path / "assets")
    out = tmp_path / "run"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))

    cmd = [sys.executable, "-m", "swiftune", "sft", "--model", str(model), "--dataset", str(data), "--output-dir",
           str(out), "--max-steps", "2", "--save-steps", "2", "--val-ratio", "0", *TRAIN_FLAGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, preexec_fn=limit)
    assert proc.returncode != 0
    assert str(out / ".staging" / "checkpoint-2") in proc.stderr, proc.stderr[-2000:]
    assert not (out / "checkpoint-2").exists() and not (out / "final").exists()


def test_a_csv_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from swiftune.data import load_datasets
    from swiftune.data.errors import DataError

    path = tmp_path / "data.csv"
    path.write_bytes(b"instruction,output\nhi,\xff\xfe\n")
    with pytest.raises(DataError, match=rf"{path}: not UTF-8"):
        load_datasets([str(path)])


@pytest.mark.parametrize("damage", ["config", "weights"])
def test_a_damaged_base_model_folder_names_the_file(tmp_path: Path, damage: str) -> None:
    from cli_fixtures import save_tiny_model

    from swiftune.loading import load_model

    folder = save_tiny_model(tmp_path / "model")
    target = folder / ("config.json" if damage == "config" else "model.safetensors")
    target.write_bytes(target.read_bytes()[:30])
    with pytest.raises(SwiftuneError) as info:
        load_model(str(folder), task="causal-lm")
    assert str(target) in str(info.value)


def test_an_exported_model_gets_the_usual_permissions(tmp_path: Path) -> None:
    """transformers' save_pretrained writes model.safetensors 0600 (through safetensors) and its
    JSON files 0644; the export folder's files all get the mode of any new file."""
    import swiftune
    from cli_fixtures import save_tiny_model
    from transformers import AutoModelForCausalLM

    model = save_tiny_model(tmp_path / "model")
    Swift.prepare(AutoModelForCausalLM.from_pretrained(model), dict(LORA)).save_pretrained(tmp_path / "adapter")
    old = os.umask(0o022)
    try:
        out = swiftune.export(adapter=[str(tmp_path / "adapter")], model=str(model), output=str(tmp_path / "merged"))
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in Path(out).iterdir() if p.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes


def test_a_failed_atomic_write_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    import errno

    from swiftune.errors import FileError
    from swiftune.files import atomic_write

    target = tmp_path / "args.json"

    def disk_full(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a full disk reports it: no path

    with pytest.raises(FileError, match=rf"{target}: cannot write: {os.strerror(errno.ENOSPC)}"):
        atomic_write(target, disk_full)
    assert list(tmp_path.iterdir()) == []
