"""Chat templates of vision-language models whose tokenizers carry none (LLaVA-1.5 ships its
template in the processor, which swiftune does not load): the ``<image>`` tags stay in the text."""

from __future__ import annotations

from swiftune.template import ChatTemplate

TEMPLATES: tuple[ChatTemplate, ...] = (
    ChatTemplate(
        name="llava1_5",
        description="LLaVA-1.5 (Vicuna style) USER: ... ASSISTANT: ... </s> (ms-swift's name)",
        prefix="{bos}",
        system="{content}\n",
        user="USER: {content}\n",
        assistant="ASSISTANT: {content}{eos}\n",
        stop=("</s>",),
    ),
)
