"""The built-in ``DatasetAdapter``s: alpaca, sharegpt, messages, query-response, text, classification.

Each reads one common public layout and emits canonical examples (see ``swiftune.dataset``);
role names found in the wild (human / gpt / bot / observation ...) map onto
system / user / assistant / tool.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from swiftune.data.errors import DataError
from swiftune.dataset import DatasetAdapter, as_text

ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "ipython": "tool",
}


def _role(value: Any, where: str) -> str:
    role = ROLE_ALIASES.get(str(value).lower()) if value is not None else None
    if role is None:
        raise DataError(f"{where}: unknown role {value!r}; expected one of {', '.join(sorted(ROLE_ALIASES))}")
    return role


def _text(value: Any, where: str) -> str:
    """Message content as text: a string (or a number), or OpenAI-style parts ``[{"type": "text", "text": ...}]``."""
    if isinstance(value, list) and value and all(isinstance(p, Mapping) for p in value):
        return "".join(as_text(p.get("text", ""), f"{where}.content[{i}].text")
                       for i, p in enumerate(value) if p.get("type", "text") == "text")
    return as_text(value, f"{where}.content")


def _turns(value: Any, column: str, role_key: str, content_key: str) -> list[dict[str, str]]:
    """A list of turns (or its JSON text); each a {role_key, content_key} dict or a {human, assistant} pair."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DataError(f"field '{column}' is text that is not a JSON list of turns") from None
    if not isinstance(value, list):
        raise DataError(f"field '{column}' must be a list of turns, got {type(value).__name__}")
    out: list[dict[str, str]] = []
    for i, turn in enumerate(value):
        where = f"{column}[{i}]"
        if not isinstance(turn, Mapping):
            raise DataError(f"{where} must be an object, got {type(turn).__name__}")
        if role_key in turn or content_key in turn:
            for key in (role_key, content_key):
                if turn.get(key) is None:
                    raise DataError(f"{where}: missing field '{key}'")
            out.append({"role": _role(turn[role_key], where), "content": _text(turn[content_key], where)})
        elif "human" in turn and "assistant" in turn:
            out.append({"role": "user", "content": _text(turn["human"], where)})
            out.append({"role": "assistant", "content": _text(turn["assistant"], where)})
        else:
            raise DataError(f"{where}: expected fields '{role_key}' and '{content_key}', found {', '.join(map(str, turn)) or 'none'}")
    return out


def _history(value: Any) -> list[dict[str, str]]:
    """``[[query, response], ...]`` -> alternating user / assistant turns."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"field 'history' must be a list of [query, response] pairs, got {type(value).__name__}")
    out: list[dict[str, str]] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise DataError(f"history[{i}] must be a [query, response] pair")
        out += [{"role": "user", "content": as_text(pair[0], f"history[{i}][0]")},
                {"role": "assistant", "content": as_text(pair[1], f"history[{i}][1]")}]
    return out


def _system(row: Mapping[str, Any]) -> list[dict[str, str]]:
    system = row.get("system")
    return [{"role": "system", "content": as_text(system, "system")}] if system else []


class AlpacaAdapter(DatasetAdapter):
    """instruction / input / output rows (Stanford Alpaca and its many translations)."""

    name = "alpaca"
    description = "instruction, input, output -> one user turn and one answer"
    required_columns = frozenset({"instruction", "output"})
    optional_columns = frozenset({"input", "system", "history"})

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        prompt = self.text(row, "instruction")
        extra = self.text(row, "input", required=False)
        if extra:
            prompt = f"{prompt}\n\n{extra}"
        return {
            "messages": [
                *_system(row),
                *_history(row.get("history")),
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": self.text(row, "output")},
            ]
        }


class ShareGPTAdapter(DatasetAdapter):
    """ShareGPT conversations: ``[{"from": "human"|"gpt"|"system", "value": ...}, ...]``."""

    name = "sharegpt"
    description = "conversations: [{from, value}, ...] (human / gpt / system / observation)"
    required_columns = frozenset({"conversations"})
    optional_columns = frozenset({"system"})

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        turns = _turns(self.get(row, "conversations"), "conversations", "from", "value")
        if turns and turns[0]["role"] == "system":
            return {"messages": turns}
        return {"messages": [*_system(row), *turns]}


class MessagesAdapter(DatasetAdapter):
    """OpenAI chat format: ``{"messages": [{"role": ..., "content": ...}, ...]}``."""

    name = "messages"
    description = "messages: [{role, content}, ...] (OpenAI chat format)"
    required_columns = frozenset({"messages"})

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"messages": _turns(self.get(row, "messages"), "messages", "role", "content")}


class QueryResponseAdapter(DatasetAdapter):
    """query / response rows with optional [query, response] history and system prompt (SWIFT's own)."""

    name = "query-response"
    description = "query, response (optional history [[q, r], ...], system)"
    required_columns = frozenset({"query", "response"})
    optional_columns = frozenset({"history", "system"})

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "messages": [
                *_system(row),
                *_history(row.get("history")),
                {"role": "user", "content": self.text(row, "query")},
                {"role": "assistant", "content": self.text(row, "response")},
            ]
        }


class TextAdapter(DatasetAdapter):
    """Raw text for unsupervised fine-tuning / continued pre-training (loss on every token)."""

    name = "text"
    description = "text -> language modelling on every token (continued pre-training)"
    required_columns = frozenset({"text"})
    produces = "text"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        text = self.get(row, "text")
        if not isinstance(text, str) or not text.strip():
            raise DataError("field 'text' is empty" if isinstance(text, str) else "field 'text' must be a string")
        return {"text": text}


class ClassificationAdapter(DatasetAdapter):
    """text (and text_pair) with a label: a class name or a class index."""

    name = "classification"
    description = "text, label (optional text_pair) -> sequence classification"
    required_columns = frozenset({"text", "label"})
    optional_columns = frozenset({"text_pair"})
    produces = "classification"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        label = self.get(row, "label")
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise DataError(f"field 'label' must be a class name or index, got {label!r}")
        example = {"text": self.text(row, "text"), "label": label}
        if row.get("text_pair") is not None:
            example["text_pair"] = as_text(row["text_pair"], "text_pair")
        return example


ADAPTERS: tuple[type[DatasetAdapter], ...] = (
    AlpacaAdapter,
    ShareGPTAdapter,
    MessagesAdapter,
    QueryResponseAdapter,
    TextAdapter,
    ClassificationAdapter,
)
