"""An example model-zoo plugin: one model family, one chat template, one dataset adapter for a new
row format and one dataset shipped as package data. It shows that every swiftune registry is
filled through the same entry-point hooks as the built-ins; copy it as a starting point.
"""

from __future__ import annotations

from typing import Any, Mapping

import swiftune
from swiftune import ChatTemplate, DatasetAdapter, DatasetEntry, ModelFamily
from swiftune.model_family import ArchitectureKeys

#: Zephyr's chat layout (HuggingFaceH4/zephyr-7b-beta): role tags on their own line, ``</s>`` ends a turn.
ZEPHYR = ChatTemplate(
    name="zephyr",
    description="Zephyr: <|user|> / <|assistant|> tags, each turn ended by </s>",
    system="<|system|>\n{content}</s>\n",
    user="<|user|>\n{content}</s>\n",
    assistant="<|assistant|>\n{content}</s>\n",
    stop=("</s>",),
)

#: Zephyr is a Mistral fine-tune: the same architecture, picked by hub id (``parent``), own template.
ZEPHYR_FAMILY = ModelFamily(
    name="zephyr",
    description="Zephyr chat models (Mistral architecture, DPO-tuned), Zephyr chat template",
    hf_ids=("HuggingFaceH4/zephyr-7b-beta", "HuggingFaceH4/zephyr-7b-alpha"),
    architectures=("MistralForCausalLM",),
    model_types=("mistral",),
    template="zephyr",
    keys=ArchitectureKeys(embedding="model.embed_tokens", layers="model.layers", lm_head="lm_head",
                          attention="self_attn", mlp="mlp"),
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
    parent="mistral",
)


class DialogueLines(DatasetAdapter):
    """A transcript in one text field: ``"User: Hi\\nBot: Hello!"`` (speaker, colon, text per line)."""

    name = "dialogue-lines"
    description = "one 'dialogue' text field, a 'Speaker: text' line per turn (User / Bot / System)"
    required_columns = frozenset({"dialogue"})
    produces = "messages"
    ROLES = {"user": "user", "bot": "assistant", "system": "system"}

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        from swiftune.data import DataError

        messages = []
        for number, line in enumerate(str(self.get(row, "dialogue")).splitlines(), 1):
            if not line.strip():
                continue
            speaker, sep, text = line.partition(":")
            role = self.ROLES.get(speaker.strip().lower()) if sep else None
            if role is not None:
                messages.append({"role": role, "content": text.strip()})
            elif messages and not (sep and speaker.strip().isalpha()):  # a wrapped line continues the turn
                messages[-1]["content"] += "\n" + line.strip()
            else:
                raise DataError(f"field 'dialogue' line {number}: expected 'User: ...', 'Bot: ...' or 'System: ...', got {line!r}")
        return {"messages": messages}


DIALOGUES = DatasetEntry(
    name="example-dialogues",
    description="a few short User/Bot transcripts (shipped with swiftune-example-zoo, no network)",
    adapter="dialogue-lines",
    path="data/dialogues.jsonl",
    package="swiftune_example_zoo",
    tags=("chat", "example"),
)


@swiftune.hookimpl
def register_models(register):
    register(ZEPHYR_FAMILY)


@swiftune.hookimpl
def register_templates(register):
    register(ZEPHYR)


@swiftune.hookimpl
def register_datasets(register):
    register(DialogueLines)
    register(DIALOGUES)
