"""GGUF files: transformers reads them (``gguf_file=``) and dequantizes every tensor to float.

``convert_gguf`` writes the result as a regular safetensors checkpoint with its tokenizer, so it
loads in a second or two afterwards instead of being dequantized again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import ModelLoadError


def _split(path: Path) -> tuple[str, str]:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    return str(path.parent), path.name


def load_gguf(path: Path, auto_class: Any, dtype: torch.dtype | str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) dequantized from the GGUF file at ``path``."""
    from transformers import AutoTokenizer

    folder, name = _split(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = auto_class.from_pretrained(folder, gguf_file=name, dtype=dtype or torch.float32)
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise ModelLoadError(f"{path}: transformers cannot load this GGUF file: {exc}") from exc
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]
    return model, tokenizer


def _without_quantizer(model: Any) -> Any:
    """The same weights in a plain model: transformers marks GGUF-loaded models as quantized (and
    refuses to save them) although their tensors are already dequantized floats."""
    if getattr(model, "hf_quantizer", None) is None:
        return model
    data = model.config.to_dict()
    data.pop("quantization_config", None)
    config = type(model.config).from_dict(data)
    with torch.device("meta"):  # no second random initialisation: the tensors are assigned below
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), assign=True)
    plain.generation_config = model.generation_config
    return plain


def convert_gguf(path: Path, dest: Path, auto_class: Any = None) -> None:
    """Dequantize ``path`` into ``dest`` as float32 safetensors plus tokenizer files."""
    if auto_class is None:
        from transformers import AutoModelForCausalLM as auto_class
    model, tokenizer = load_gguf(path, auto_class, torch.float32)
    _without_quantizer(model).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
