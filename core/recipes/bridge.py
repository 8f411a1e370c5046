"""The recipes' only door to ``swiftune.loading`` and ``swiftune.data``.

Everything the recipes need from the model loaders, chat templates and dataset machinery goes
through these few functions, so the recipes read the same whichever way those pieces evolve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch  # noqa: F401 - dtype annotations

from ..loading.vision import is_image_text


def load_model_and_tokenizer(name: str, dtype: torch.dtype | None = None, trust_remote_code: bool | None = None):
    """(model, tokenizer) for a local folder, hub id, ``ms::`` id, .gguf file or packaged model name
    (``trust_remote_code``: the user's permission; None leaves it to ``SWIFTUNE_TRUST_REMOTE_CODE``)."""
    from ..loading import load_model

    return load_model(name, task="causal-lm", dtype=dtype, trust_remote_code=trust_remote_code)


def resolve_template(name: str | None, model: Any, tokenizer: Any) -> Any:
    """The chat renderer: ``name``, else the tokenizer's own Jinja template, else the model family's."""
    from .aliases import template_name as registered_name
    from ..data import get_renderer

    if is_image_text(tokenizer):  # a vision-language model's processor: its tokenizer renders the chat
        tokenizer = tokenizer.tokenizer
    name = registered_name(name)  # ms-swift's template names (qwen2, qwen3, ...) read as ours
    if not name and not getattr(tokenizer, "chat_template", None):
        from ..loading import family_for

        name = family_for(model, notice=False).template
    return get_renderer(tokenizer, name)


def template_name(template: Any) -> str | None:
    return getattr(template, "name", None)


def load_train_val(specs: Sequence[str], val_specs: Sequence[str], *, seed: int, val_ratio: float,
                   skip_bad_rows: bool) -> tuple[list[dict], list[dict]]:
    """Canonical examples for training and evaluation (``#N`` sampling, shuffling, the val split)."""
    from ..data import load_datasets

    return load_datasets(list(specs), seed=seed, val_ratio=0.0 if val_specs else val_ratio,
                         skip_bad_rows=skip_bad_rows, val_specs=list(val_specs))


def load_preference_rows(specs: Sequence[str], val_specs: Sequence[str], *, seed: int, val_ratio: float,
                         skip_bad_rows: bool, adapter: str | None) -> tuple[list[dict], list[dict], str]:
    """rlhf's canonical examples, train and eval, and their kind (``preference``, ``kto``, ``prompt``)."""
    from ..data import LoadStats, load_datasets

    stats = LoadStats()
    train, val = load_datasets(list(specs), seed=seed, val_ratio=0.0 if val_specs else val_ratio,
                               skip_bad_rows=skip_bad_rows, val_specs=list(val_specs), adapter=adapter, stats=stats)
    return train, val, stats.kind


def tokenize(examples: Sequence[dict], tokenizer: Any, template: Any, max_length: int, truncation: str,
             packing: bool = False):
    """A ``datasets.Dataset`` of input_ids / labels (-100 outside assistant answers) / attention_mask."""
    return tokenize_with_stats(examples, tokenizer, template, max_length, truncation, packing)[0]


def tokenize_with_stats(examples: Sequence[dict], tokenizer: Any, template: Any, max_length: int, truncation: str,
                        packing: bool = False):
    """``tokenize`` and its ``TokenizeStats`` (token counts for the start summary, without a second
    pass over the rows); cached by content under ``$SWIFTUNE_CACHE/tokenized/``."""
    from ..data import TokenizeStats
    from ..data import tokenize as data_tokenize

    stats = TokenizeStats()
    dataset = data_tokenize(list(examples), tokenizer,
                            getattr(template, "template", None) or template_name(template),
                            max_length, truncation, packing=packing, stats=stats, cache=True)
    return dataset, stats


def collator(tokenizer: Any, padding_free: bool = False):
    """Right padding for training (input_ids with the pad id, labels with -100), or one flat row."""
    from ..data import DataCollator, FlatCollator

    return FlatCollator() if padding_free else DataCollator.from_tokenizer(tokenizer)


def encode_prompt(messages: Sequence[dict], tokenizer: Any, template: Any) -> list[int]:
    """Token ids of ``messages`` followed by the assistant's generation prompt."""
    text = template.prompt(list(messages))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


#: End-of-turn markers of common chat formats, looked for in a tokenizer's own Jinja template.
_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def stop_strings(template: Any, tokenizer: Any) -> list[str]:
    """Strings that end an answer: the template's, or the end-of-turn markers of the tokenizer's Jinja."""
    stops = list(getattr(template, "stop", ()) or ())
    if stops:
        return stops
    jinja = getattr(tokenizer, "chat_template", None) or ""
    return [s for s in _TURN_ENDS if isinstance(jinja, str) and s in jinja]


#: Answer columns a prompt-only row may lack, filled with "" so its format's adapter applies.
_ANSWER_COLUMNS = {"query": "response", "instruction": "output"}


@dataclass
class PromptRows:
    """Batch inference input: each row with its prompt conversation and where it came from."""

    rows: list[tuple[dict, list[dict]]] = field(default_factory=list)
    #: "file line N" of each row, for messages about it.
    where: list[str] = field(default_factory=list)
    #: The rows skipped with ``skip_bad_rows``, each "file line N: why".
    skipped: list[str] = field(default_factory=list)


def read_prompts(spec: str, skip_bad_rows: bool = False) -> PromptRows:
    """Batch inference input: (the raw row, its conversation up to the answer to generate).

    Any format the dataset adapters read works; rows may omit the answer (``{"query": ...}``,
    ``{"instruction": ...}``, messages ending with a user turn). A trailing assistant turn (a
    reference answer) is not part of the prompt. Text rows become one user message. A row that
    cannot be read or converted is an error naming its line, or, with ``skip_bad_rows``, skipped
    and listed in ``skipped``.
    """
    from ..data.convert import detect_adapter, get_adapter
    from ..data.errors import DataError
    from ..data.load import resolve
    from ..data.multimodal import row_image_paths
    from ..data.spec import parse_spec

    parsed = parse_spec(spec)
    sources, entry_adapter, renames = resolve(parsed, skip_bad_rows=skip_bad_rows)
    out = PromptRows()
    for raw in sources:
        out.skipped += raw.bad
        for i, row in enumerate(raw.rows):
            row = dict(row)
            try:
                prompt = _prompt_of(row, renames, entry_adapter, raw.where(i), detect_adapter, get_adapter)
                row_image_paths(row, raw.origin)  # a missing / unreadable image is a bad row like any other
                out.rows.append((row, prompt))
                out.where.append(raw.where(i))
            except (DataError, KeyError, TypeError, ValueError) as exc:
                detail = f"missing field {exc}" if type(exc) is KeyError else str(exc)
                message = detail if detail.startswith(raw.where(i)) else f"{raw.where(i)}: {detail}"
                if not skip_bad_rows:
                    raise DataError(f"{message}; fix the row or pass --skip-bad-rows") from None
                out.skipped.append(message)
    if parsed.n is not None:
        out.rows, out.where = out.rows[: parsed.n], out.where[: parsed.n]
    return out


def _prompt_of(row: dict, renames: dict, adapter: str | None, where: str, detect_adapter: Any,
               get_adapter: Any) -> list[dict]:
    filled = {renames.get(k, k): v for k, v in row.items()}
    for key, answer in _ANSWER_COLUMNS.items():
        if key in filled:
            filled.setdefault(answer, "")
    example = get_adapter(adapter or detect_adapter(set(filled), where)).convert(filled)
    if "messages" in example:
        messages = list(example["messages"])
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()
    else:
        messages = [{"role": "user", "content": example["text"]}]
    if not messages:
        raise ValueError("no prompt to answer (no user turn)")
    return messages


def read_prompt_rows(spec: str) -> list[tuple[dict, list[dict]]]:
    """``read_prompts(spec).rows``: every row must convert."""
    return read_prompts(spec).rows


def personalize(examples: Sequence[dict], *, system: str | None, model_name: Sequence[str],
                model_author: Sequence[str]) -> list[dict]:
    """``--model_name`` / ``--model_author`` filled into self-cognition rows; ``--system`` where none."""
    from ..data.identity import fill_identity, system_prompt, with_system

    return with_system(fill_identity(examples, model_name, model_author), system_prompt(system))
