"""Canonical examples -> a ``datasets.Dataset`` of ``input_ids`` / ``labels`` / ``attention_mask``.

* chat (``messages``): rendered by the chat template; loss only on assistant answers.
* text: language modelling on every token (labels = input ids), optionally packed into
  ``max_length`` blocks.
* classification: ``labels`` is the class index (class names are mapped through ``label2id``).

Truncation is "right" (keep the start), "left" (keep the end) or "drop" (skip the example);
``TokenizeStats`` counts what happened, and an empty result is an error that says why.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..template import ChatTemplate
from .chat import get_renderer
from .encode import IGNORE_INDEX, TRUNCATIONS, encode_chat, encode_spans_batch, truncate
from .errors import DataError

log = logging.getLogger("swiftune.data")

#: Examples rendered and handed to the tokenizer per call (a fast tokenizer encodes them in parallel).
BATCH_SIZE = 1000
#: Chats per worker process of ``datasets.map`` (fewer rows: no workers; see ``processes_for``).
ROWS_PER_PROCESS = 5000


@dataclass
class TokenizeStats:
    """Counts of one ``tokenize`` call."""

    kind: str = ""
    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_target: int = 0
    #: Rows of the result (differs from ``kept`` with packing).
    rows: int = 0
    longest: int = 0
    #: Tokens in the result, and how many of them are trained on (labels other than -100).
    tokens: int = 0
    trained_tokens: int = 0
    template: str = ""
    label2id: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"tokenized {self.examples} {self.kind} examples -> {self.rows} rows (longest {self.longest} tokens)"
        if self.truncated:
            text += f"; truncated {self.truncated}"
        if self.dropped_too_long:
            text += f"; dropped {self.dropped_too_long} too long"
        if self.dropped_no_target:
            text += f"; dropped {self.dropped_no_target} with no trained tokens left"
        return text


def example_kind(example: Any) -> str:
    """"messages", "classification" or "text" for a canonical example."""
    if isinstance(example, dict):
        if "messages" in example:
            return "messages"
        if "label" in example and "text" in example:
            return "classification"
        if "text" in example:
            return "text"
    raise DataError(f"not a canonical example (messages / text / text+label): {str(example)[:80]}")


def build_label2id(examples: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Class name -> index, sorted by name; integer labels map to themselves."""
    labels = {e["label"] for e in examples}
    if all(isinstance(x, int) for x in labels):
        return {str(x): x for x in sorted(labels)}
    return {str(x): i for i, x in enumerate(sorted(str(x) for x in labels))}


def _fit(ids: list[int], labels: list[int], max_length: int, truncation: str, stats: TokenizeStats):
    stats.longest = max(stats.longest, len(ids))
    cut = truncate(ids, labels, max_length, truncation)
    if cut is None:
        stats.dropped_too_long += 1
    elif len(cut[0]) < len(ids):
        stats.truncated += 1
    return cut


def _render(renderer: Any, example: dict[str, Any], index: int) -> Any:
    from jinja2 import TemplateError

    try:
        return renderer.render(example["messages"])
    except DataError as exc:
        raise DataError(f"example {index}: {exc}") from None
    except (ValueError, TypeError, TemplateError) as exc:
        raise DataError(f"example {index}: the chat template '{renderer.name}' cannot render it: {exc}") from None


def _encode_chats(tokenizer: Any, rendered: list[Any], first: int) -> list[tuple[list[int], list[int]]]:
    """Ids and labels of rendered chats, in one tokenizer call; on failure row by row, to name the row."""
    try:
        return encode_spans_batch(tokenizer, [r.text for r in rendered], [r.spans for r in rendered])
    except Exception:  # noqa: BLE001 - find the example that fails, below
        pass
    out = []
    for k, chat in enumerate(rendered):
        try:
            out.append(encode_chat(tokenizer, chat))
        except DataError as exc:
            raise DataError(f"example {first + k}: {exc}") from None
    return out


def processes_for(rows: int) -> int:
    """Worker processes for rendering and encoding ``rows`` chats: one per ``ROWS_PER_PROCESS``
    rows, at most half the CPU cores (the fast tokenizer runs threads of its own); 1 (no workers)
    for small data or a 2-core machine, where starting workers cost more than they saved when measured."""
    return max(1, min((os.cpu_count() or 1) // 2, rows // ROWS_PER_PROCESS))


def _encoded_chats(examples, tokenizer, renderer, num_proc: int):
    """(ids, labels) of every example, untruncated and in order: rendered and encoded in batches,
    by ``datasets.map`` over ``num_proc`` processes when that is more than one."""
    if num_proc <= 1:
        for first in range(0, len(examples), BATCH_SIZE):
            chunk = examples[first : first + BATCH_SIZE]
            yield from _encode_chats(tokenizer, [_render(renderer, e, first + k) for k, e in enumerate(chunk)], first)
        return
    import datasets

    def encode(batch: dict[str, list[int]]) -> dict[str, list[list[int]]]:
        indices = batch["index"]
        rendered = [_render(renderer, examples[i], i) for i in indices]
        encoded = _encode_chats(tokenizer, rendered, indices[0])
        return {"input_ids": [ids for ids, _ in encoded], "labels": [labels for _, labels in encoded]}

    # The examples reach the workers inside ``encode`` (exactly as they are); only indices go through Arrow.
    done = datasets.Dataset.from_dict({"index": list(range(len(examples)))}).map(
        encode, batched=True, batch_size=BATCH_SIZE, num_proc=num_proc, remove_columns=["index"],
        keep_in_memory=True, new_fingerprint=f"swiftune-tokenize-{os.getpid()}-{id(examples)}",
        desc=f"tokenizing {len(examples)} chats")
    yield from zip(done["input_ids"], done["labels"])


def _chat_rows(examples, tokenizer, template, max_length, truncation, stats, num_proc: int = 1):
    renderer = get_renderer(tokenizer, template)
    stats.template = renderer.name
    for ids, labels in _encoded_chats(examples, tokenizer, renderer, num_proc):
        cut = _fit(ids, labels, max_length, truncation, stats)
        if cut is None:
            continue
        if all(x == IGNORE_INDEX for x in cut[1]):
            stats.dropped_no_target += 1
            continue
        yield cut


def _text_rows(examples, tokenizer, max_length, truncation, packing, stats):
    eos = tokenizer.eos_token_id
    for first in range(0, len(examples), BATCH_SIZE):
        texts = [example["text"] for example in examples[first : first + BATCH_SIZE]]
        for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]:
            ids = list(ids)
            if eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
            if packing:  # blocks are cut later; nothing is truncated or dropped here
                stats.longest = max(stats.longest, len(ids))
                yield ids, list(ids)
                continue
            cut = _fit(ids, list(ids), max_length, truncation, stats)
            if cut is not None:
                yield cut


def _pack(rows, max_length: int, split_rows: bool):
    """Concatenate rows into blocks of at most ``max_length`` tokens. Text rows are cut anywhere;
    chat rows stay whole (a block holds as many whole conversations as fit)."""
    ids: list[int] = []
    labels: list[int] = []
    for row_ids, row_labels in rows:
        if not split_rows and ids and len(ids) + len(row_ids) > max_length:
            yield ids, labels
            ids, labels = [], []
        ids += row_ids
        labels += row_labels
        while split_rows and len(ids) >= max_length:
            yield ids[:max_length], labels[:max_length]
            ids, labels = ids[max_length:], labels[max_length:]
    if ids:
        yield ids, labels


def _classification(examples, tokenizer, max_length, truncation, label2id, stats):
    columns: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    for i, example in enumerate(examples):
        key = str(example["label"])
        if key not in label2id:
            raise DataError(f"example {i}: label {example['label']!r} is not one of {', '.join(label2id)}")
        args = (example["text"], example.get("text_pair"))
        n = len(tokenizer(*args)["input_ids"])
        stats.longest = max(stats.longest, n)
        if n > max_length:
            if truncation == "drop":
                stats.dropped_too_long += 1
                continue
            stats.truncated += 1
        old_side = tokenizer.truncation_side
        tokenizer.truncation_side = "left" if truncation == "left" else "right"
        try:
            enc = tokenizer(*args, truncation=True, max_length=max_length)
        finally:
            tokenizer.truncation_side = old_side
        columns["input_ids"].append(list(enc["input_ids"]))
        columns["attention_mask"].append([1] * len(enc["input_ids"]))
        columns["labels"].append(label2id[key])
    return columns


def tokenize_with_stats(
    examples: Sequence[dict[str, Any]],
    tokenizer: Any,
    template: str | ChatTemplate | Any | None = None,
    max_length: int = 1024,
    truncation: str = "right",
    *,
    packing: bool = False,
    label2id: dict[str, int] | None = None,
    cache: bool = False,
    num_proc: int | None = None,
) -> tuple[Any, TokenizeStats]:
    """``tokenize`` that also returns its ``TokenizeStats``."""

    if truncation not in TRUNCATIONS:
        raise DataError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got {truncation!r}")
    if max_length < 1:
        raise DataError(f"max_length must be positive, got {max_length}")
    if not examples:
        raise DataError("no examples to tokenize")
    kinds = {example_kind(e) for e in examples}
    if len(kinds) > 1:
        raise DataError(f"examples mix kinds ({', '.join(sorted(kinds))}); tokenize one kind at a time")
    kind = kinds.pop()
    if kind == "messages":
        template = get_renderer(tokenizer, template)
    if kind == "classification" and label2id is None:
        label2id = build_label2id(examples)
    key = None
    if cache:
        from . import token_cache

        key = token_cache.cache_key(examples, tokenizer, template, kind=kind, max_length=max_length,
                                    truncation=truncation, packing=packing, label2id=label2id)
        hit = token_cache.load(key) if key else None
        if hit is not None:
            log.info("tokenized dataset from the cache: %s", token_cache.cache_folder(key))
            return hit[0], TokenizeStats(**hit[1])
    num_proc = processes_for(len(examples)) if num_proc is None else num_proc
    dataset, stats = _tokenize(examples, tokenizer, template, max_length, truncation, kind, packing, label2id, num_proc)
    if key:
        token_cache.store(key, dataset, dataclasses.asdict(stats))
    return dataset, stats


def _tokenize(examples, tokenizer, template, max_length, truncation, kind, packing, label2id, num_proc=1):
    import datasets

    stats = TokenizeStats(kind=kind, examples=len(examples))
    if stats.kind == "classification":
        stats.label2id = dict(label2id)
        columns = _classification(examples, tokenizer, max_length, truncation, stats.label2id, stats)
        stats.kept = len(columns["input_ids"])
    else:
        if stats.kind == "messages":
            rows = list(_chat_rows(examples, tokenizer, template, max_length, truncation, stats, num_proc))
        else:
            rows = list(_text_rows(examples, tokenizer, max_length, truncation, packing, stats))
        stats.kept = len(rows)
        if packing:
            rows = list(_pack(rows, max_length, split_rows=stats.kind == "text"))
        columns = {
            "input_ids": [r[0] for r in rows],
            "labels": [r[1] for r in rows],
            "attention_mask": [[1] * len(r[0]) for r in rows],
        }
        stats.trained_tokens = sum(len(labels) - labels.count(IGNORE_INDEX) for labels in columns["labels"])
    stats.rows = len(columns["input_ids"])
    stats.tokens = sum(len(ids) for ids in columns["input_ids"])
    if stats.rows == 0:
        raise DataError(
            f"no example is left after tokenization: {stats.summary()}. "
            "Raise max_length, or use truncation='left' / 'right' instead of 'drop'"
        )
    return datasets.Dataset.from_dict(columns), stats


def tokenize(
    examples: Sequence[dict[str, Any]],
    tokenizer: Any,
    template: str | ChatTemplate | Any | None = None,
    max_length: int = 1024,
    truncation: str = "right",
    *,
    packing: bool = False,
    label2id: dict[str, int] | None = None,
    stats: TokenizeStats | None = None,
    cache: bool = False,
    num_proc: int | None = None,
) -> Any:
    """Tokenize canonical examples into a ``datasets.Dataset`` with input_ids / labels / attention_mask.

    ``template``: a ``ChatTemplate``, a registered name, "tokenizer", a renderer from
    ``get_renderer``, or None for the tokenizer's own (chat examples only). ``truncation``: "right", "left" or "drop" for examples over
    ``max_length``. ``packing`` concatenates examples into ``max_length`` blocks. Pass a
    ``TokenizeStats`` as ``stats`` to read the counts (also logged at INFO). ``cache``: reuse (or
    write) the result under ``$SWIFTUNE_CACHE/tokenized/``, keyed by everything that changes the
    tokens (see ``swiftune.data.token_cache``). ``num_proc``: worker processes that render and
    encode chats (``datasets.map``); None: ``processes_for`` (one per 5000 chats, at most half the CPU cores).
    """
    dataset, result = tokenize_with_stats(
        examples, tokenizer, template, max_length, truncation, packing=packing, label2id=label2id, cache=cache,
        num_proc=num_proc,
    )
    if stats is not None:
        stats.__dict__.update(result.__dict__)
    log.info("%s", result.summary())
    return dataset
