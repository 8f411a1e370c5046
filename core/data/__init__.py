"""Dataset loading and tokenization: specs -> canonical examples -> loss-masked token batches.

    from swiftune.data import load_datasets, tokenize, DataCollator
    train, val = load_datasets(["swiftune-demo", "data/mine.jsonl#200"], seed=42, val_ratio=0.05)
    train_ds = tokenize(train, tokenizer, template=None, max_length=1024, truncation="right")
    collate = DataCollator.from_tokenizer(tokenizer)        # right padding, labels padded with -100

Names are imported lazily so ``import swiftune.data`` does not pull in ``datasets`` or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "DataError": "errors",
    "OfflineError": "errors",
    "DatasetSpec": "spec",
    "parse_spec": "spec",
    "RawRows": "readers",
    "read_local": "readers",
    "SourceStats": "convert",
    "check_example": "convert",
    "convert_rows": "convert",
    "detect_adapter": "convert",
    "LoadStats": "load",
    "load_dataset": "load",
    "load_datasets": "load",
    "get_renderer": "chat",
    "render_prompt": "chat",
    "default_template_name": "chat",
    "IGNORE_INDEX": "encode",
    "encode_chat": "encode",
    "encode_spans": "encode",
    "truncate": "encode",
    "TokenizeStats": "tokenization",
    "build_label2id": "tokenization",
    "tokenize": "tokenization",
    "tokenize_with_stats": "tokenization",
    "DataCollator": "collator",
    "FlatCollator": "collator",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'swiftune.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .chat import default_template_name, get_renderer, render_prompt
    from .collator import DataCollator, FlatCollator
    from .convert import SourceStats, check_example, convert_rows, detect_adapter
    from .encode import IGNORE_INDEX, encode_chat, encode_spans, truncate
    from .errors import DataError, OfflineError
    from .load import LoadStats, load_dataset, load_datasets
    from .readers import RawRows, read_local
    from .spec import DatasetSpec, parse_spec
    from .tokenization import TokenizeStats, build_label2id, tokenize, tokenize_with_stats

