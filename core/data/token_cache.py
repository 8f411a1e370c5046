"""Tokenized datasets cached by content, so a rerun with the same data starts at once.

The key is a SHA-256 over everything that changes the tokens: the canonical examples (after
sampling and shuffling), the chat template (a registered template's fields with the bos / eos it is
filled with, or the tokenizer's own Jinja), the tokenizer (its vocabulary, merges, normalizer,
added and special tokens), ``max_length``, truncation, packing, class labels, the versions of
transformers and tokenizers, and ``ENCODING_VERSION`` (raised whenever swiftune's encoding
changes). A hit is a memory-mapped ``datasets.Dataset`` under
``$SWIFTUNE_CACHE/tokenized/<key>/``; a miss tokenizes and writes that folder atomically.
A renderer swiftune does not know (a user's own object) has no key: it is never cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("swiftune.data")

#: Raise when a change to swiftune's tokenization would give different tokens for the same inputs.
ENCODING_VERSION = 1
SUBDIR = "tokenized"
_STATS = "stats.json"


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def examples_digest(examples: Sequence[dict[str, Any]]) -> str:
    """A digest of the examples, in order (one JSON dump: fast enough for millions of tokens)."""
    return _sha(json.dumps(list(examples), sort_keys=True, ensure_ascii=False, default=repr))


def tokenizer_digest(tokenizer: Any) -> str:
    """A digest of what decides a tokenizer's ids: its backend (a fast tokenizer's whole JSON, which
    holds vocabulary, merges, normalizer and added tokens) or its vocabulary, and its special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if getattr(tokenizer, "is_fast", False) and backend is not None:
        body = backend.to_str()
    else:
        body = json.dumps(sorted(tokenizer.get_vocab().items()))
    special = {k: str(v) for k, v in (getattr(tokenizer, "special_tokens_map", None) or {}).items()}
    added = {str(k): str(v) for k, v in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()}
    return _sha(type(tokenizer).__name__, body, json.dumps(special, sort_keys=True), json.dumps(added, sort_keys=True),
                str(getattr(tokenizer, "chat_template", None) or ""))


def renderer_digest(renderer: Any) -> str | None:
    """A digest of a chat renderer (None when it is not one of swiftune's: not cacheable)."""
    from .chat import JinjaRenderer, TemplateRenderer

    if isinstance(renderer, TemplateRenderer):
        fields = dataclasses.asdict(renderer.template)
        return _sha("template", json.dumps(fields, sort_keys=True, default=repr), renderer._bos, renderer._eos)
    if isinstance(renderer, JinjaRenderer):
        return _sha("jinja", str(renderer.tokenizer.chat_template))
    return None


def cache_key(examples: Sequence[dict[str, Any]], tokenizer: Any, renderer: Any, *, kind: str, max_length: int,
              truncation: str, packing: bool, label2id: dict[str, int] | None) -> str | None:
    """The cache key of one ``tokenize`` call, or None when it cannot be cached."""
    import tokenizers
    import transformers

    template = renderer_digest(renderer) if kind == "messages" else "-"
    if template is None:
        return None
    settings = json.dumps({"kind": kind, "max_length": max_length, "truncation": truncation, "packing": packing,
                           "label2id": label2id, "encoding": ENCODING_VERSION,
                           "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
                          sort_keys=True)
    return _sha(settings, template, tokenizer_digest(tokenizer), examples_digest(examples))


def cache_folder(key: str) -> Path:
    from ..loading.cache import cache_root

    return cache_root() / SUBDIR / key


def load(key: str) -> tuple[Any, dict[str, Any]] | None:
    """The cached dataset and its stats, or None (absent, or unreadable: then it is rebuilt)."""
    import datasets

    from ..loading.cache import is_complete

    folder = cache_folder(key)
    if not is_complete(folder):
        return None
    try:
        stats = json.loads((folder / _STATS).read_text())
        return datasets.load_from_disk(str(folder / "data")), stats
    except Exception as exc:  # noqa: BLE001 - a damaged cache entry is rebuilt, never fatal
        log.warning("swiftune: removing an unreadable tokenized cache at %s (%s); tokenizing again", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def store(key: str, dataset: Any, stats: dict[str, Any]) -> Path | None:
    """Write ``dataset`` and its stats under ``key`` (atomically); a failure to write only warns."""
    from ..loading.cache import build_atomically

    def build(tmp: Path) -> None:
        dataset.save_to_disk(str(tmp / "data"))
        (tmp / _STATS).write_text(json.dumps(stats))

    try:
        return build_atomically(cache_folder(key), build, {"kind": "tokenized", "rows": len(dataset)})
    except OSError as exc:
        log.warning("swiftune: could not cache the tokenized dataset (%s); the next run tokenizes again", exc)
        return None
