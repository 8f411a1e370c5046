"""Who the model says it is: ms-swift's self-cognition placeholders and a default system prompt.

Chat examples may carry ``{{NAME}}`` and ``{{AUTHOR}}`` (the bundled ``swift/self-cognition`` rows
do); ``fill_identity`` replaces them with ``--model_name`` / ``--model_author``. Each option takes
one value (every row) or two, English and Chinese: a row written in Chinese gets the Chinese one.
Which of two values is Chinese is read from the script (a value with CJK characters); when that
does not decide, ms-swift's documented order applies (Chinese first). A row with a placeholder and
no value for it is an error: training a model to answer "I am {{NAME}}" is never what was meant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError

NAME = "{{NAME}}"
AUTHOR = "{{AUTHOR}}"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def english_and_chinese(values: Sequence[str]) -> tuple[str, str] | None:
    """(value for English rows, value for Chinese rows) from one or two command-line values."""
    values = [v for v in values if v]
    if not values:
        return None
    if len(values) == 1:
        return values[0], values[0]
    first, second = values[:2]
    first_zh, second_zh = bool(_CJK.search(first)), bool(_CJK.search(second))
    if first_zh != second_zh:
        return (second, first) if first_zh else (first, second)
    return second, first  # ms-swift's order: the Chinese name, then the English one


def fill_identity(examples: Sequence[dict[str, Any]], model_name: Sequence[str] = (),
                  model_author: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Examples with ``{{NAME}}`` / ``{{AUTHOR}}`` replaced (others are returned unchanged)."""
    names = english_and_chinese(model_name)
    authors = english_and_chinese(model_author)
    out = []
    for example in examples:
        messages = example.get("messages")
        texts = [m.get("content") for m in messages or () if isinstance(m.get("content"), str)]
        if not any(NAME in t or AUTHOR in t for t in texts):
            out.append(example)
            continue
        for placeholder, values, flag in ((NAME, names, "--model_name"), (AUTHOR, authors, "--model_author")):
            if values is None and any(placeholder in t for t in texts):
                raise DataError(f"training rows contain the {placeholder} placeholder (swift/self-cognition): "
                                f"pass {flag} VALUE (or an English and a Chinese value)")
        chinese = any(_CJK.search(t) for t in texts)
        pick = 1 if chinese else 0
        out.append({**example, "messages": [_filled(m, names, authors, pick) for m in messages]})
    return out


def _filled(message: dict[str, Any], names: tuple[str, str] | None, authors: tuple[str, str] | None,
            pick: int) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, str):
        return message
    if names:
        content = content.replace(NAME, names[pick])
    if authors:
        content = content.replace(AUTHOR, authors[pick])
    return {**message, "content": content}


def system_prompt(value: str | None) -> str | None:
    """``--system``: the text, or the contents of a ``.txt`` file it names (as ms-swift reads it)."""
    if value and value.endswith(".txt") and Path(value).expanduser().is_file():
        return Path(value).expanduser().read_text(encoding="utf-8").strip()
    return value


def with_system(examples: Sequence[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """Chat examples without a system turn get ``system`` first; the others keep their own."""
    if not system:
        return list(examples)
    out = []
    for example in examples:
        messages = example.get("messages")
        if isinstance(messages, list) and not (messages and messages[0].get("role") == "system"):
            example = {**example, "messages": [{"role": "system", "content": system}, *messages]}
        out.append(example)
    return out
