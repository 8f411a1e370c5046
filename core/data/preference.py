"""Preference examples (rlhf's canonical kinds) and their rendering into TRL's text rows.

Canonical kinds, produced by the dataset adapters like ``messages`` is for sft:

* ``preference``: ``{"messages": [..., {"role": "assistant", "content": chosen}], "rejected_response": str}``
  (ms-swift's row layout; DPO, ORPO, CPO, SimPO).
* ``kto``: ``{"messages": [..., assistant answer], "label": bool}`` (an unpaired answer, desirable or not).
* ``prompt``: ``{"messages": [... ending with a user turn], "columns": {...}}`` (GRPO; the other columns
  of the row, e.g. ``solution``, reach the reward functions).

Rendering uses the same chat template and the same answer spans as sft's loss mask: the prompt is
the text before the last answer's span and the answer is the span itself (answer plus end-of-turn),
so TRL's completion tokens are the tokens sft trains on.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .errors import DataError

KINDS = ("preference", "kto", "prompt")


def check_preference_example(example: Mapping[str, Any], produces: str) -> None:
    """Raise ``DataError`` naming the field when ``example`` is not a canonical example of ``produces``."""
    from .convert import check_example

    if produces == "prompt":
        messages = example.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DataError("field 'messages' must be a non-empty list")
        check_example({"messages": [*messages, {"role": "assistant", "content": ""}]}, "messages")
        if messages[-1]["role"] != "user":
            raise DataError(f"the prompt must end with a user turn, not {messages[-1]['role']!r}")
        return
    check_example(example, "messages")
    if example["messages"][-1]["role"] != "assistant":
        raise DataError("the last turn of 'messages' must be the assistant's answer")
    if produces == "preference":
        rejected = example.get("rejected_response")
        if not isinstance(rejected, str) or not rejected:
            raise DataError("field 'rejected_response' must be non-empty text")
    elif produces == "kto":
        if not isinstance(example.get("label"), bool):
            raise DataError(f"field 'label' must be true or false, got {example.get('label')!r}")
    else:
        raise DataError(f"unknown preference kind {produces!r}; expected one of {', '.join(KINDS)}")


def split_last_answer(messages: Sequence[Mapping[str, Any]], template: Any) -> tuple[str, str]:
    """(prompt text, last answer text with its end-of-turn) in ``template``'s rendering."""
    rendered = template.render(list(messages))
    if not rendered.spans:
        raise DataError("the chat template found no assistant answer to train on")
    start, end = rendered.spans[-1]
    if rendered.text[end:].strip():
        raise DataError("the last assistant answer is not the end of the conversation")
    return rendered.text[:start], rendered.text[start:end]


def _with_answer(messages: Sequence[Mapping[str, Any]], answer: str) -> list[dict[str, Any]]:
    return [*map(dict, messages[:-1]), {"role": "assistant", "content": answer}]


def preference_row(example: Mapping[str, Any], template: Any) -> dict[str, str]:
    """TRL's ``prompt`` / ``chosen`` / ``rejected`` text for one ``preference`` example."""
    prompt, chosen = split_last_answer(example["messages"], template)
    prompt_r, rejected = split_last_answer(_with_answer(example["messages"], example["rejected_response"]), template)
    if prompt_r != prompt:
        raise DataError("the chat template renders the prompt differently before the rejected answer")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def kto_row(example: Mapping[str, Any], template: Any) -> dict[str, Any]:
    """TRL's ``prompt`` / ``completion`` / ``label`` for one ``kto`` example."""
    prompt, completion = split_last_answer(example["messages"], template)
    return {"prompt": prompt, "completion": completion, "label": bool(example["label"])}


def prompt_row(example: Mapping[str, Any], template: Any) -> dict[str, Any]:
    """TRL's GRPO row: the rendered ``prompt`` (with the generation prompt) and the row's other columns."""
    columns = dict(example.get("columns") or {})
    clash = sorted(set(columns) & {"prompt", "completion", "completions"})
    if clash:
        raise DataError(f"column '{clash[0]}' is a name GRPO passes to reward functions itself; rename it")
    return {**columns, "prompt": template.prompt(list(example["messages"]))}


ROWS = {"preference": preference_row, "kto": kto_row, "prompt": prompt_row}


def render_rows(examples: Sequence[Mapping[str, Any]], kind: str, template: Any) -> list[dict[str, Any]]:
    """Render canonical examples of ``kind`` into TRL's rows; an error names the example."""
    if kind not in ROWS:
        raise DataError(f"rlhf needs preference data (kinds: {', '.join(KINDS)}), got {kind or 'nothing'} examples")
    out = []
    for i, example in enumerate(examples):
        try:
            out.append(ROWS[kind](example, template))
        except DataError as exc:
            raise DataError(f"example {i + 1}: {exc}") from None
    return out
