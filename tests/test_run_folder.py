"""A run folder is never replaced, mixed or deleted without an explicit flag: the run-folder lock,
refusing a folder with a finished run, export never writing over what it reads, arguments stored
per checkpoint (and checked on resume), and resuming a finished run training nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import swiftune
from swiftune.errors import ConfigError
from swiftune.recipes.rebuild import rebuild
from swiftune.recipes.run_lock import LOCK_NAME, RunFolderBusy, RunLock

from cli_fixtures import ensure_data, ensure_model, run_cli, save_tiny_model

#: Holds the lock of the folder given as argv[1] until its stdin closes (or it is killed).
HOLDER = """
import sys
from swiftune.recipes.run_lock import RunLock
lock = RunLock(sys.argv[1], command="holder-of-the-test").acquire()
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes (equal trees: nothing was written)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hold(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    return ensure_model(root), ensure_data(root)


def short_run(assets, output_dir: Path, **overrides):
    model, data = assets
    settings = dict(model=str(model), dataset=[f"{data}#16"], output_dir=str(output_dir), max_steps=2, save_steps=2,
                    logging_steps=1, val_ratio=0, precision="fp32", per_device_train_batch_size=4,
                    gradient_accumulation_steps=1, tuner_args={"r": 2, "target_modules": ["q_proj", "v_proj"]})
    return swiftune.sft(**{**settings, **overrides})


@pytest.fixture(scope="module")
def finished_run(assets, tmp_path_factory) -> Path:
    """A finished two-step run: checkpoint-2, final/, args.json, logging.jsonl."""
    run = tmp_path_factory.mktemp("finished") / "run"
    short_run(assets, run)
    return run


# -- the lock ---------------------------------------------------------------------------------------
def test_a_second_run_in_a_locked_folder_fails_at_once_and_writes_nothing(assets, tmp_path) -> None:
    folder = tmp_path / "busy"
    holder = hold(folder)
    try:
        before = tree(folder)
        with pytest.raises(RunFolderBusy) as info:
            short_run(assets, folder)
        message = str(info.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "holder-of-the-test" in message
        assert tree(folder) == before  # nothing written, the holder's record untouched
        model, data = assets
        proc = run_cli("sft", "--model", str(model), "--dataset", str(data), "--output-dir", str(folder))
        assert proc.returncode == 2 and f"pid {holder.pid}" in proc.stderr, proc.stderr[-2000:]
        assert tree(folder) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert not (folder / LOCK_NAME).exists()  # released on exit
    with RunLock(folder) as lock:
        assert lock.took_over == {}


def test_the_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, capsys) -> None:
    folder = tmp_path / "stale"
    holder = hold(folder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert (folder / LOCK_NAME).exists()  # a kill -9 leaves the record behind
    with RunLock(folder) as lock:
        assert lock.took_over["pid"] == holder.pid
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
            RunLock(folder).acquire()  # held again, now by this process
    assert f"pid {holder.pid}" in capsys.readouterr().err
    assert not (folder / LOCK_NAME).exists()


def test_a_run_holds_the_lock_while_it_trains(assets, tmp_path, monkeypatch) -> None:
    from transformers import TrainerCallback

    from swiftune.recipes import callbacks

    out, seen = tmp_path / "run", []

    class TryLock(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            try:
                RunLock(out).acquire()
                seen.append("acquired")
            except RunFolderBusy as exc:
                seen.append(str(exc))

    hooks = callbacks.debug_hooks
    monkeypatch.setattr(callbacks, "debug_hooks", lambda: [*hooks(), TryLock()])
    short_run(assets, out, max_steps=1)
    assert seen and all(f"pid {os.getpid()}" in s for s in seen), seen
    assert not (out / LOCK_NAME).exists()  # released at the end


# -- no clobbering ----------------------------------------------------------------------------------
def test_a_finished_run_without_checkpoints_is_not_replaced(assets, finished_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for checkpoint in run.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    before = tree(run)
    with pytest.raises(ConfigError, match="--overwrite-output-dir") as info:
        short_run(assets, run)
    assert "final" in str(info.value) and "args.json" in str(info.value)
    with pytest.raises(ConfigError, match="no checkpoint to continue from"):
        short_run(assets, run, resume=True)
    assert tree(run) == before


@pytest.mark.parametrize("where", ["run", "final", "inside", "parent", "base"])
def test_export_refuses_an_output_over_what_it_reads(finished_run, tmp_path, where: str) -> None:
    run = tmp_path / "runs" / "run"
    shutil.copytree(finished_run, run)
    args = json.loads((run / "args.json").read_text())
    output = {"run": run, "final": run / "final", "inside": run / "merged", "parent": run.parent,
              "base": Path(args["model"])}[where]
    before = tree(run.parent)
    with pytest.raises(ConfigError, match="--output: .* which this command reads"):
        swiftune.export(adapter=[str(run)], output=str(output), overwrite=True)
    assert tree(run.parent) == before
    assert Path(args["model"], "config.json").is_file()


# -- arguments per checkpoint, checked on resume ----------------------------------------------------
def test_each_checkpoint_rebuilds_its_own_model(finished_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    trained_on = json.loads((run / "args.json").read_text())["model"]
    for folder in (run / "checkpoint-2", run / "final"):
        assert json.loads((folder / "args.json").read_text())["model"] == trained_on
    args = json.loads((run / "args.json").read_text())
    (run / "args.json").write_text(json.dumps({**args, "model": str(tmp_path / "some-other-model")}))
    assert rebuild([str(run / "checkpoint-2")]).base == trained_on


def test_resuming_with_another_model_is_an_error_that_writes_nothing(assets, finished_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    other = save_tiny_model(tmp_path / "other-model", seed=1)
    before = tree(run)
    with pytest.raises(ConfigError) as info:
        short_run(assets, run, model=str(other), resume=True, max_steps=4)
    trained_on = json.loads((run / "args.json").read_text())["model"]
    assert str(other) in str(info.value) and trained_on in str(info.value)
    assert tree(run) == before


# -- finished runs ----------------------------------------------------------------------------------
def test_resuming_a_finished_run_trains_nothing(assets, finished_run, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = tree(run)
    result = short_run(assets, run, resume=True)
    assert result.global_step == 2 and result.adapter_dir == run / "final"
    assert "is complete" in capsys.readouterr().out
    assert tree(run) == before  # no step 3, no rewritten log, args or adapter

    shutil.rmtree(run / "final")  # killed after its last checkpoint, before final/ was written
    result = short_run(assets, run, resume=True)
    assert result.global_step == 2
    final_weights = (run / "final" / "adapter_model.safetensors").read_bytes()
    assert final_weights == (run / "checkpoint-2" / "adapter_model.safetensors").read_bytes()
