"""Comparing a generated answer with its reference.

``exact_match`` and ``contains`` compare normalised text (case, surrounding punctuation and runs
of whitespace do not count); with an answer regex both sides are first reduced to what it
extracts (its first group, or the whole match), e.g. ``-?\\d+(?:\\.\\d+)?`` for a numeric answer.
"""

from __future__ import annotations

import re
import string
from typing import Iterable

_EDGE_PUNCT = string.punctuation + "。，！？：；"


def normalize(text: str) -> str:
    return " ".join(text.casefold().split()).strip(_EDGE_PUNCT + " ")


def extract(text: str, pattern: re.Pattern[str] | None) -> str:
    """What ``pattern`` finds in ``text`` (last match: the final answer of a worked solution)."""
    if pattern is None:
        return text
    found = list(pattern.finditer(text))
    if not found:
        return ""
    match = found[-1]
    return match.group(1) if match.groups() else match.group(0)


def exact_match(prediction: str, reference: str, pattern: re.Pattern[str] | None = None) -> bool:
    ref = extract(reference, pattern) or reference
    return normalize(extract(prediction, pattern)) == normalize(ref)


def contains(prediction: str, reference: str) -> bool:
    ref = normalize(reference)
    return bool(ref) and ref in normalize(prediction)


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
