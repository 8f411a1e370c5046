"""Hub checkpoints as local folders: Hugging Face (``huggingface_hub.snapshot_download``) and
ModelScope (``modelscope.snapshot_download``).

A local cached snapshot is used first. Otherwise the hub must be reachable: offline (the
Hugging Face offline variables, ``SWIFTUNE_OFFLINE=1``, or a failed short probe of the host) the
call fails at once with a message that says so and how to use a local folder, instead of retrying.
Only the files a safetensors checkpoint needs are fetched (never ``.bin`` / ``.pt`` pickles).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..data.hub import HF_HOST, MS_HOST, OFFLINE_ENV, PROBE_TIMEOUT_S, ms_cache_dir, ms_local_snapshot
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


#: Variables that put model downloads offline (``HF_DATASETS_OFFLINE`` concerns datasets only).
_OFFLINE_VARS = {"hf": (OFFLINE_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"), "ms": (OFFLINE_ENV,)}
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def offline_reason(hub: str) -> str | None:
    """Why ``hub`` ("hf" or "ms") cannot be reached now, or None when it may be: an offline
    variable, else a TCP probe of the host (a few seconds at most; skipped behind a proxy)."""
    for var in _OFFLINE_VARS[hub]:
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var}=1 is set"
    if any(os.environ.get(v) for v in _PROXIES):
        return None
    host = HF_HOST if hub == "hf" else MS_HOST
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or exc})"
    return None


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
    reason = offline_reason("hf")
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
    reason = offline_reason("ms")
    if reason is not None:
        raise OfflineError(offline_message("ms", model_id, reason)) from None
    try:
        return Path(snapshot_download(model_id, revision=revision, cache_dir=cache_dir, allow_patterns=ALLOW_PATTERNS))
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot download 'ms::{model_id}' from ModelScope: {exc}") from exc
