"""Multiple-choice rows for ``swiftune eval``: a question, its choices and the right one.

Accepted shapes: ``choices`` as a list of strings or ARC's ``{"text": [...], "label": [...]}``;
``answer`` as an index, a label letter (``"B"``) or the text of the right choice.
"""

from __future__ import annotations

import string
from typing import Any, Mapping

from swiftune.data.errors import DataError
from swiftune.dataset import DatasetAdapter


class MultipleChoiceAdapter(DatasetAdapter):
    name = "multiple-choice"
    description = "question, choices, answer (index, letter or text) -> a log-likelihood accuracy item (eval)"
    required_columns = frozenset({"question", "choices", "answer"})
    optional_columns = frozenset({"system"})
    produces = "multiple_choice"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        question = self.get(row, "question")
        if not isinstance(question, str):
            raise DataError(f"field 'question' must be text, got {type(question).__name__}")
        choices, labels = _choices(self.get(row, "choices"))
        answer = _answer_index(self.get(row, "answer"), choices, labels)
        messages = [{"role": "user", "content": question}]
        if isinstance(row.get("system"), str) and row["system"]:
            messages.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": messages, "choices": choices, "answer": answer}


def _choices(value: Any) -> tuple[list[str], list[str]]:
    if isinstance(value, Mapping):  # ARC: {"text": [...], "label": ["A", "B", ...]}
        texts, labels = value.get("text"), value.get("label")
        if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels):
            raise DataError("field 'choices': expected a list, or {'text': [...], 'label': [...]} of equal lengths")
    elif isinstance(value, list):
        texts, labels = value, list(string.ascii_uppercase[: len(value)])
    else:
        raise DataError(f"field 'choices' must be a list of strings, got {type(value).__name__}")
    if len(texts) < 2 or not all(isinstance(t, str) for t in texts):
        raise DataError("field 'choices' must hold at least two strings")
    return list(texts), [str(label) for label in labels]


def _answer_index(value: Any, choices: list[str], labels: list[str]) -> int:
    if isinstance(value, bool):
        raise DataError("field 'answer' must be an index, a label or a choice's text, got a boolean")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip() in labels:
        index = labels.index(value.strip())
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    elif isinstance(value, str) and value in choices:
        index = choices.index(value)
    else:
        raise DataError(f"field 'answer' = {value!r} names none of the {len(choices)} choices (labels {', '.join(labels)})")
    if not 0 <= index < len(choices):
        raise DataError(f"field 'answer' = {value!r} is out of range for {len(choices)} choices")
    return index
