"""Hub sources: a Hugging Face dataset id (``datasets.load_dataset``) or a ModelScope id (``MsDataset``).

Offline, these fail at once with a message that says so and how to use a local copy, instead of
retrying for minutes: the Hugging Face offline variables are honoured, and otherwise a short TCP
probe of the hub's host decides before any download starts.
"""

from __future__ import annotations

import inspect

import os
import socket
from pathlib import Path

from .errors import DataError, OfflineError
from .readers import RawRows, read_local

HF_HOST = "huggingface.co"
MS_HOST = "www.modelscope.cn"
PROBE_TIMEOUT_S = 3.0
#: Set to 1 to treat every hub as unreachable (no probing).
OFFLINE_ENV = "SWIFTUNE_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hf_offline_mode() -> str | None:
    """The Hugging Face offline variable that is set, if any (``datasets`` then reads only its cache)."""
    return next((f"{n}=1 is set" for n in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if _env_on(n)), None)


#: The variables that put a hub offline, by what is downloaded: ``datasets`` reads
#: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE, transformers (models) HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE.
OFFLINE_VARS = {
    ("hf", "datasets"): (OFFLINE_ENV, "HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"),
    ("hf", "models"): (OFFLINE_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"),
    ("ms", "datasets"): (OFFLINE_ENV,),
    ("ms", "models"): (OFFLINE_ENV,),
}


def offline_reason(hub: str, what: str = "datasets") -> str | None:
    """Why ``hub`` ("hf" or "ms") cannot serve ``what`` ("datasets" or "models") now, or None when it
    may: an offline variable, else a TCP probe of the host (a few seconds at most; skipped behind a proxy)."""
    for var in OFFLINE_VARS[hub, what]:
        if _env_on(var):
            return f"{var}=1 is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy may reach what a direct probe cannot
    host = HF_HOST if hub == "hf" else MS_HOST
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or exc})"
    return None


def offline_message(what: str, reasons: list[str]) -> str:
    return (
        f"dataset {what} must be downloaded from a hub, but this machine is offline: {'; '.join(reasons)}. "
        "Download it where there is a network (datasets.load_dataset(...).save_to_disk(DIR), or a .jsonl/.parquet "
        "export) and pass the local path instead"
    )


def load_hf(dataset_id: str, subset: str | None, split: str) -> RawRows:
    """One split of a Hugging Face Hub dataset (network, or the local datasets cache when offline vars are set)."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, subset, split=split)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise DataError(f"hf::{dataset_id}: {exc}") from None
        raise
    except (ConnectionError, OSError) as exc:
        reasons = [r for r in (hf_offline_mode(), f"{type(exc).__name__}: {exc}") if r]
        raise OfflineError(offline_message(f"hf::{dataset_id}", reasons), reasons) from None
    except Exception as exc:  # noqa: BLE001 - datasets raises its own types for a missing dataset
        if type(exc).__name__ in {"DatasetNotFoundError", "DataFilesNotFoundError", "LocalEntryNotFoundError"}:
            raise DataError(f"hf::{dataset_id}{f' ({subset})' if subset else ''}: {exc}") from None
        raise
    return RawRows(_origin("hf", dataset_id, subset, split), ds)


def load_ms(dataset_id: str, subset: str | None, split: str) -> RawRows:
    """One split of a ModelScope dataset: ``MsDataset.load`` when ModelScope's dataset extras are
    installed, otherwise the repository's files (``dataset_snapshot_download``) read as a local folder."""
    try:
        try:
            from modelscope.msdatasets import MsDataset
        except ImportError:
            return _load_ms_snapshot(dataset_id, subset, split)
        kwargs = {"subset_name": subset} if subset else {}
        if "trust_remote_code" in inspect.signature(MsDataset.load).parameters:
            kwargs["trust_remote_code"] = False  # a dataset's own loading script never runs (files only)
        loaded = MsDataset.load(dataset_id, split=split, **kwargs)
    except (ConnectionError, OSError) as exc:
        reasons = [f"{type(exc).__name__}: {exc}"]
        raise OfflineError(offline_message(f"ms::{dataset_id}", reasons), reasons) from None
    ds = loaded.to_hf_dataset() if hasattr(loaded, "to_hf_dataset") else loaded
    return RawRows(_origin("ms", dataset_id, subset, split), ds)


def _origin(hub: str, dataset_id: str, subset: str | None, split: str) -> str:
    """How rows of a hub dataset name their source in errors: ``hub::id[/subset]:split``."""
    return f"{hub}::{dataset_id}{f'/{subset}' if subset else ''}:{split}"


def _read_snapshot(folder: Path, hub: str, dataset_id: str, subset: str | None, split: str) -> RawRows:
    """A downloaded dataset repository read as a local folder, named after its hub origin."""
    raw = read_local(folder, split, subset=subset)
    raw.origin = _origin(hub, dataset_id, subset, split)
    return raw


def _load_ms_snapshot(dataset_id: str, subset: str | None, split: str) -> RawRows:
    try:
        from modelscope.hub.snapshot_download import dataset_snapshot_download
    except ImportError as exc:
        raise DataError(f"ms::{dataset_id} needs the modelscope package: pip install modelscope ({exc})") from None
    folder = dataset_snapshot_download(dataset_id, cache_dir=ms_cache_dir())
    return _read_snapshot(Path(folder), "ms", dataset_id, subset, split)


def ms_cache_dir() -> str | None:
    """``MODELSCOPE_CACHE`` read at each call (modelscope itself reads it once per process)."""
    return os.environ.get("MODELSCOPE_CACHE", "").strip() or None


def ms_local_snapshot(repo_id: str, repo_type: str = "dataset", cache_dir: str | Path | None = None,
                      revision: str | None = None) -> Path | None:
    """The folder of ``repo_id`` already in the ModelScope cache (``cache_dir``, else
    ``MODELSCOPE_CACHE``, else modelscope's default), or None; never touches the network
    (``modelscope.snapshot_download(..., local_files_only=True)``). Datasets and models use it."""
    try:
        from modelscope import snapshot_download
    except ImportError:
        return None
    cache = str(cache_dir) if cache_dir is not None else ms_cache_dir()
    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type=repo_type, revision=revision, cache_dir=cache,
                                      local_files_only=True))
    except Exception:  # noqa: BLE001 - modelscope_hub.errors.CacheNotFound and relatives
        return None


def _load_ms_cached(dataset_id: str, subset: str | None, split: str) -> RawRows | None:
    """One split of a ModelScope dataset that is already downloaded (read as a local folder)."""
    folder = ms_local_snapshot(dataset_id)
    return None if folder is None else _read_snapshot(folder, "ms", dataset_id, subset, split)


def hf_local_snapshot(dataset_id: str) -> Path | None:
    """The files of dataset repository ``dataset_id`` already in the Hugging Face hub cache
    (``huggingface-cli download --repo-type dataset``), or None; never touches the network."""
    from huggingface_hub import snapshot_download

    cache = os.environ.get("HF_HUB_CACHE", "").strip() or None  # read per call, like MODELSCOPE_CACHE
    try:
        return Path(snapshot_download(dataset_id, repo_type="dataset", cache_dir=cache, local_files_only=True))
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and relatives
        return None


def load_hub(hub: str, dataset_id: str, subset: str | None, split: str) -> RawRows:
    """Load from "hf" or "ms" after checking the hub can be reached. A ModelScope dataset already
    in the ModelScope cache is read from there, online or not. Offline, a Hugging Face dataset is
    read from a downloaded repository in the hub cache, else (in Hugging Face offline mode) from
    the ``datasets`` cache, which fails fast when the dataset is not there."""
    if hub == "ms":
        cached = _load_ms_cached(dataset_id, subset, split)
        if cached is not None:
            return cached
    reason = offline_reason(hub)
    if hub == "hf" and reason is not None:
        folder = hf_local_snapshot(dataset_id)
        if folder is not None:
            return _read_snapshot(folder, "hf", dataset_id, subset, split)
    if hub == "hf" and reason is not None and reason == hf_offline_mode():
        return load_hf(dataset_id, subset, split)
    if reason is not None:
        raise OfflineError(offline_message(f"{hub}::{dataset_id}", [reason]), [reason])
    return load_hf(dataset_id, subset, split) if hub == "hf" else load_ms(dataset_id, subset, split)
