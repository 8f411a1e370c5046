"""Text with trainable character spans -> token ids and labels (-100 outside the spans), and truncation.

With a fast tokenizer the whole text is tokenized at once, exactly as at inference, and a token
is trained on when its character offsets overlap a span. A slow tokenizer (no offsets) tokenizes
the pieces between span boundaries one by one instead.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from ..template import RenderedChat

IGNORE_INDEX = -100
Truncation = Literal["right", "left", "drop"]
TRUNCATIONS: tuple[str, ...] = ("right", "left", "drop")


def encode_spans(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of ``text``; labels copy the ids of tokens inside ``spans``.

    No special tokens are added: the template already wrote them (bos included, where it has one).
    """
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        return ids, _labels_from_offsets(ids, enc["offset_mapping"], spans)
    ids: list[int] = []
    labels: list[int] = []
    pos = 0
    for start, end in sorted(spans):
        for piece, trained in ((text[pos:start], False), (text[start:end], True)):
            if piece:
                piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids += piece_ids
                labels += piece_ids if trained else [IGNORE_INDEX] * len(piece_ids)
        pos = end
    tail = tokenizer(text[pos:], add_special_tokens=False)["input_ids"] if text[pos:] else []
    return ids + tail, labels + [IGNORE_INDEX] * len(tail)


def _labels_from_offsets(ids: Sequence[int], offsets: Sequence[tuple[int, int]],
                         spans: Sequence[tuple[int, int]]) -> list[int]:
    """Each token's id where its character offsets overlap a span, else ``IGNORE_INDEX``."""
    labels = [IGNORE_INDEX] * len(ids)
    k = 0
    ordered = sorted(spans)
    for j, (start, end) in enumerate(offsets):
        while k < len(ordered) and ordered[k][1] <= start:
            k += 1
        if k < len(ordered) and end > ordered[k][0]:
            labels[j] = ids[j]
    return labels


def encode_spans_batch(tokenizer: Any, texts: Sequence[str],
                       spans: Sequence[Sequence[tuple[int, int]]]) -> list[tuple[list[int], list[int]]]:
    """``encode_spans`` of many texts: a fast tokenizer encodes them in one call (its Rust side
    runs in parallel); the result equals encoding each text alone."""
    if not getattr(tokenizer, "is_fast", False):
        return [encode_spans(tokenizer, text, row_spans) for text, row_spans in zip(texts, spans)]
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    return [(list(ids), _labels_from_offsets(ids, offsets, row_spans))
            for ids, offsets, row_spans in zip(enc["input_ids"], enc["offset_mapping"], spans)]


def encode_chat(tokenizer: Any, rendered: RenderedChat) -> tuple[list[int], list[int]]:
    """Token ids and loss labels of a rendered conversation (loss on assistant answers only)."""
    return encode_spans(tokenizer, rendered.text, rendered.spans)


def truncate(
    ids: list[int], labels: list[int], max_length: int, truncation: str
) -> tuple[list[int], list[int]] | None:
    """Cut to ``max_length``: "right" keeps the start, "left" the end, "drop" returns None."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got {truncation!r}")
    if len(ids) <= max_length:
        return ids, labels
    if truncation == "drop":
        return None
    if truncation == "right":
        return ids[:max_length], labels[:max_length]
    return ids[-max_length:], labels[-max_length:]
