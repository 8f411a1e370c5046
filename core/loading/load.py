"""``load_model``: one call from a name to ``(model, tokenizer_or_processor)``.

Accepted names, in the order they are tried:
``ms::<id>`` (ModelScope), ``hf::<id>`` (Hugging Face, explicit), an existing folder, an existing
``.gguf`` file, a registered packaged model (``swiftune list models``), a Hugging Face id
(``org/name``). Weights load from safetensors only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError

from ..files import damaged_safetensors
from ..model_family import ModelFamily, normalize_task
from .errors import ModelLoadError
from .families import family_for
from .remote_code import check_remote_code
from .vision import image_text_processor, vision_language_kind
from .remote_code import trust_remote_code as trust_remote_code_allowed

logger = logging.getLogger("swiftune.loading")


def __getattr__(name: str) -> Any:
    """``DEFAULT_MODEL``: the packaged model its plugin marks as the default (``swiftune.plugin_defaults``)."""
    if name != "DEFAULT_MODEL":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ..plugin_defaults import default_model

    return default_model()


_AUTO_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "seq2seq-lm": "AutoModelForSeq2SeqLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "image-classification": "AutoModelForImageClassification",
    "masked-lm": "AutoModelForMaskedLM",
    "feature-extraction": "AutoModel",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt")

Kind = Literal["local", "gguf", "packaged", "hf", "ms"]


@dataclass(frozen=True)
class Source:
    """Where a model name points: ``kind`` and the id or path (``ref``)."""

    kind: Kind
    ref: str


def resolve(name_or_path: str | Path) -> Source:
    """Classify a model name without loading anything (raises for names that fit no form)."""
    from .packaged import find_packaged, packaged_names

    name = str(name_or_path).strip()
    if name.startswith("ms::"):
        return Source("ms", name[4:])
    if name.startswith("hf::"):
        return Source("hf", name[4:])
    path = Path(name).expanduser()
    if path.is_dir():
        return Source("local", str(path))
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return Source("gguf", str(path))
        raise ModelLoadError(f"{path} is a file; expected a model folder or a .gguf file")
    if find_packaged(name) is not None:
        return Source("packaged", name.lower())
    if path.suffix.lower() == ".gguf":
        raise ModelLoadError(f"GGUF file not found: {path}")
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        raise ModelLoadError(f"model folder not found: {path}")
    if _HUB_ID.match(name):
        return Source("hf", name)
    packaged = ", ".join(packaged_names()) or "(none installed)"
    raise ModelLoadError(
        f"'{name}' is not a model folder, a .gguf file, a packaged model ({packaged}) or a hub id "
        "('org/name' for the Hugging Face Hub, 'ms::org/name' for ModelScope)"
    )


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16', 'float16' or 'auto'")
    return value


def _check_weights(folder: Path) -> None:
    """Refuse pickle-only checkpoints with a message instead of transformers' generic error."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pattern in _PICKLES for p in folder.glob(pattern))
    if pickles:
        raise ModelLoadError(
            f"{folder} holds only pickle weights ({', '.join(pickles[:3])}); swiftune loads safetensors only. "
            "Convert them where you trust the file (model.save_pretrained(dir, safe_serialization=True))"
        )
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a model folder: it has no config.json and no *.safetensors")


def _processor(folder: Path | str, task: str, trust_remote_code: bool) -> Any:
    import transformers

    if task == "image-classification":
        return transformers.AutoImageProcessor.from_pretrained(folder)
    try:
        return transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{folder}: cannot load a tokenizer ({exc})") from exc


def load_folder(
    folder: Path,
    *,
    task: str | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool | None = None,
    name: str | None = None,
    **model_kwargs: Any,
) -> tuple[Any, Any]:
    """(model, tokenizer_or_processor) from a local checkpoint folder (the other loaders end here)."""
    import transformers

    folder = Path(folder)
    _check_weights(folder)
    family: ModelFamily = family_for(folder, name_or_path=name or str(folder))
    task = normalize_task(task or family.task)
    trust = trust_remote_code_allowed(trust_remote_code)  # the user's word only, never the family's
    check_remote_code(folder, trust, family=family, name=name)
    vision = task == "causal-lm" and vision_language_kind(folder) is not None  # Qwen2-VL, LLaVA: image + text in
    auto_class = getattr(transformers, "AutoModelForImageTextToText" if vision else _AUTO_CLASSES[task])
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": trust, **model_kwargs}
    if dtype is not None:
        kwargs["dtype"] = _dtype(dtype)
    try:
        model = auto_class.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        damaged = damaged_safetensors(folder)  # safetensors' own message names no file
        reason = "; ".join(damaged) if damaged else f"{type(exc).__name__}: {exc}"
        raise ModelLoadError(f"{name or folder}: cannot load it as {task} ({reason})") from exc
    if name and getattr(model.config, "_name_or_path", None) != name:
        model.config._name_or_path = name  # the hub id or packaged name, for family_for and adapters
    processor = _processor(folder, task, trust)
    return model, image_text_processor(folder, model.config, processor) if vision else processor


def load_model(
    name_or_path: str | Path | None = None,
    *,
    task: str | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    **model_kwargs: Any,
) -> tuple[Any, Any]:
    """Load a model and its tokenizer (or image processor) for ``task``.

    ``name_or_path`` None: the default model (the packaged model its plugin marks as the default).
    ``task`` defaults to the model family's (``causal-lm`` for chat models). Code shipped with the
    checkpoint runs only with ``trust_remote_code=True`` (or ``SWIFTUNE_TRUST_REMOTE_CODE=1``), even
    for families that need it: otherwise a ``RemoteCodeError`` names the folder and its files.
    ``revision`` and ``cache_dir`` apply to hub ids. Extra keyword arguments go to ``from_pretrained``.
    """
    from . import hub
    from .packaged import ensure_converted, find_packaged

    if name_or_path is None:
        from ..plugin_defaults import default_model

        name_or_path = default_model()
    source = resolve(name_or_path)
    common = {"task": task, "dtype": dtype, "trust_remote_code": trust_remote_code, **model_kwargs}
    if source.kind == "local":
        return load_folder(Path(source.ref), **common)
    if source.kind == "hf":
        return load_folder(hub.hf_snapshot(source.ref, revision, cache_dir), name=source.ref, **common)
    if source.kind == "ms":
        return load_folder(hub.ms_snapshot(source.ref, revision, cache_dir), name=f"ms::{source.ref}", **common)
    if source.kind == "packaged":
        found = find_packaged(source.ref)
        assert found is not None  # resolve() checked
        return load_folder(ensure_converted(found[1]), name=found[1].name, **common)
    # A .gguf file given by path: dequantized on every load (see convert_gguf for a lasting copy).
    import transformers

    from .gguf import load_gguf

    auto_class = getattr(transformers, _AUTO_CLASSES[normalize_task(task or "causal-lm")])
    return load_gguf(Path(source.ref), auto_class, _dtype(dtype))
