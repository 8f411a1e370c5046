"""Dataset adapters for preference tuning (``swiftune rlhf``): ms-swift's rows and TRL's.

* ``preference``: ``messages`` (ending with the chosen answer) + ``rejected_response`` (ms-swift).
* ``chosen-rejected``: TRL's ``prompt`` / ``chosen`` / ``rejected``, each text or a message list;
  without ``prompt``, ``chosen`` and ``rejected`` are whole conversations sharing their prompt turns.
* ``kto``: ``messages`` (ending with an answer) + ``label`` (true: desirable) (ms-swift).
* ``prompt-completion``: TRL's unpaired ``prompt`` / ``completion`` / ``label``.
* ``prompt``: GRPO's prompts (``messages`` ending with a user turn, or TRL's ``prompt``); the row's
  other columns are kept for the reward functions. Never detected from columns: rlhf picks it.
"""

from __future__ import annotations

from typing import Any, Mapping

from swiftune.data.errors import DataError
from swiftune.dataset import DatasetAdapter

from .adapters import _system, _text, _turns


def _conversation(value: Any, column: str) -> list[dict[str, str]]:
    """A text becomes one user turn; a list (or its JSON text) is read as {role, content} turns."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [{"role": "user", "content": value}]
    return _turns(value, column, "role", "content")


def _answer(value: Any, column: str) -> str:
    """An answer: text, or a message list whose last turn is the assistant's."""
    if isinstance(value, str):
        return value
    turns = _turns(value, column, "role", "content")
    if not turns or turns[-1]["role"] != "assistant":
        raise DataError(f"field '{column}' must be text or end with an assistant turn")
    return turns[-1]["content"]


def _with_system(row: Mapping[str, Any], turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """``turns`` led by the row's ``system`` column, unless they already hold a system turn."""
    if any(m["role"] == "system" for m in turns):
        return turns
    return [*_system(row), *turns]


def _messages(adapter: DatasetAdapter, row: Mapping[str, Any]) -> list[dict[str, str]]:
    """ms-swift's ``messages`` column, led by the row's ``system`` unless its first turn is a system turn."""
    messages = _turns(adapter.get(row, "messages"), "messages", "role", "content")
    if not messages or messages[0]["role"] != "system":
        messages = [*_system(row), *messages]
    return messages


def _label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    words = {"true": True, "false": False, "1": True, "0": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise DataError(f"field 'label' must be true or false, got {value!r}")


class PreferenceAdapter(DatasetAdapter):
    """ms-swift's preference rows: the conversation ends with the chosen answer; ``rejected_response`` beside it."""

    name = "preference"
    description = "messages (ending with the chosen answer) + rejected_response -> dpo / orpo / cpo / simpo"
    required_columns = frozenset({"messages", "rejected_response"})
    optional_columns = frozenset({"system"})
    produces = "preference"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        messages = _messages(self, row)
        return {"messages": messages, "rejected_response": _text(self.get(row, "rejected_response"), "rejected_response")}


class ChosenRejectedAdapter(DatasetAdapter):
    """TRL's preference rows: explicit ``prompt`` or prompt turns shared by ``chosen`` and ``rejected``."""

    name = "chosen-rejected"
    description = "prompt, chosen, rejected (text or message lists; TRL's layout) -> dpo / orpo / cpo / simpo"
    required_columns = frozenset({"chosen", "rejected"})
    optional_columns = frozenset({"prompt", "system"})
    produces = "preference"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        chosen, rejected = self.get(row, "chosen"), self.get(row, "rejected")
        if row.get("prompt") is not None:
            prompt = _conversation(row["prompt"], "prompt")
        else:
            prompt = self._shared_prompt(chosen, rejected)
        prompt = _with_system(row, prompt)
        answer = _answer(chosen, "chosen")
        return {"messages": [*prompt, {"role": "assistant", "content": answer}],
                "rejected_response": _answer(rejected, "rejected")}

    @staticmethod
    def _shared_prompt(chosen: Any, rejected: Any) -> list[dict[str, str]]:
        """TRL's implicit prompt: the turns both conversations share before their last answers."""
        if isinstance(chosen, str) or isinstance(rejected, str):
            raise DataError("missing field 'prompt' (text chosen / rejected answers need one)")
        a, b = _turns(chosen, "chosen", "role", "content"), _turns(rejected, "rejected", "role", "content")
        if a[:-1] != b[:-1]:
            raise DataError("fields 'chosen' and 'rejected' must share every turn but the last (or give 'prompt')")
        return a[:-1]


class KTOAdapter(DatasetAdapter):
    """ms-swift's KTO rows: a conversation ending with an answer, and whether that answer is desirable."""

    name = "kto"
    description = "messages (ending with an answer) + label (true: desirable) -> kto"
    required_columns = frozenset({"messages", "label"})
    optional_columns = frozenset({"system"})
    produces = "kto"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        messages = _messages(self, row)
        return {"messages": messages, "label": _label(self.get(row, "label"))}


class PromptCompletionAdapter(DatasetAdapter):
    """TRL's unpaired rows: ``prompt``, one ``completion`` and its ``label``."""

    name = "prompt-completion"
    description = "prompt, completion, label (text or message lists; TRL's unpaired layout) -> kto"
    required_columns = frozenset({"prompt", "completion", "label"})
    optional_columns = frozenset({"system"})
    produces = "kto"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        prompt = _conversation(self.get(row, "prompt"), "prompt")
        prompt = _with_system(row, prompt)
        answer = _answer(self.get(row, "completion"), "completion")
        return {"messages": [*prompt, {"role": "assistant", "content": answer}], "label": _label(self.get(row, "label"))}


class PromptAdapter(DatasetAdapter):
    """GRPO's prompts: ``messages`` ending with a user turn (a trailing answer is dropped) or ``prompt``."""

    name = "prompt"
    description = "messages or prompt (+ any columns the reward functions read, e.g. solution) -> grpo"
    optional_columns = frozenset({"messages", "prompt", "query", "system"})
    produces = "prompt"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        for column in ("messages", "prompt", "query"):
            if row.get(column) is not None:
                messages = _conversation(row[column], column)
                break
        else:
            raise DataError("missing field 'messages' (or 'prompt')")
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()
        messages = _with_system(row, messages)
        columns = {k: v for k, v in row.items() if k not in ("messages", "prompt", "query", "system")}
        return {"messages": messages, "columns": columns}


PREFERENCE_ADAPTERS: tuple[type[DatasetAdapter], ...] = (
    PreferenceAdapter,
    ChosenRejectedAdapter,
    KTOAdapter,
    PromptCompletionAdapter,
    PromptAdapter,
)
