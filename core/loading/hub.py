"""Hub checkpoints as local folders: Hugging Face (``huggingface_hub.snapshot_download``) and
ModelScope (``modelscope.snapshot_download``).

A local cached snapshot is used first. Otherwise the hub must be reachable: offline (the
Hugging Face offline variables, ``SWIFTUNE_OFFLINE=1``, or a failed short probe of the host) the
call fails at once with a message that says so and how to use a local folder, instead of retrying.
Only the files a safetensors checkpoint needs are fetched (never ``.bin`` / ``.pt`` pickles).
"""

from __future__ import annotations

from pathlib import Path

from ..data.hub import ms_cache_dir, ms_local_snapshot, offline_reason
from .errors import ModelLoadError, OfflineError


#: Files of a checkpoint that swiftune loads: config, safetensors weights, tokenizer, remote code.
ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.py",
    "*.model",
    "*.tiktoken",
    "*.txt",
    "*.jinja",
    "tokenizer*",
]

_HOW = {
    "hf": "huggingface-cli download {id} --local-dir DIR",
    "ms": "modelscope download --model {id} --local_dir DIR",
}
_HUB_NAME = {"hf": "the Hugging Face Hub", "ms": "ModelScope"}


def offline_message(hub: str, model_id: str, reason: str) -> str:
    shown = f"ms::{model_id}" if hub == "ms" else model_id
    return (
        f"model '{shown}' must be downloaded from {_HUB_NAME[hub]}, but this machine is offline ({reason}) "
        "and no local copy is cached. Download it where there is a network "
        f"(`{_HOW[hub].format(id=model_id)}`) and pass that folder instead of the id, "
        "e.g. load_model('DIR') or `--model DIR`"
    )


def hf_snapshot(model_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local folder with the checkpoint ``model_id`` of the Hugging Face Hub (``cache_dir``:
    the hub cache to use instead of ``HF_HUB_CACHE``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                model_id, revision=revision, allow_patterns=ALLOW_PATTERNS, cache_dir=cache_dir, local_files_only=True
            )
        )
    except LocalEntryNotFoundError:
        pass
    reason = offline_reason("hf", "models")
    if reason is not None:
        raise OfflineError(offline_message("hf", model_id, reason)) from None
    try:
        return Path(snapshot_download(model_id, revision=revision, allow_patterns=ALLOW_PATTERNS, cache_dir=cache_dir))
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; name the model
        raise ModelLoadError(f"cannot download '{model_id}' from the Hugging Face Hub: {exc}") from exc


def ms_snapshot(model_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local folder with the checkpoint ``model_id`` of ModelScope (``cache_dir``, else
    ``MODELSCOPE_CACHE``, else modelscope's default cache)."""
    try:
        from modelscope import snapshot_download
    except ImportError as exc:
        raise ModelLoadError(f"ms::{model_id} needs the modelscope package: pip install modelscope ({exc})") from None
    if cache_dir is None:
        cache_dir = ms_cache_dir()  # modelscope reads MODELSCOPE_CACHE once per process; we read it per call
    local = ms_local_snapshot(model_id, "model", cache_dir, revision)
    if local is not None:
        return local
    reason = offline_reason("ms", "models")
    if reason is not None:
        raise OfflineError(offline_message("ms", model_id, reason)) from None
    try:
        return Path(snapshot_download(model_id, revision=revision, cache_dir=cache_dir, allow_patterns=ALLOW_PATTERNS))
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot download 'ms::{model_id}' from ModelScope: {exc}") from exc
