"""The built-in chat templates: fallbacks for tokenizers that carry no Jinja chat template.

Each mirrors the prompt format its model family was trained with, so a base checkpoint of that
family (or one whose tokenizer lost its template) is fine-tuned in the format it expects.
"""

from __future__ import annotations

from swiftune.template import ChatTemplate


def _chatml(
    name: str, description: str, default_system: str | None = None, markers: tuple[str, ...] = ()
) -> ChatTemplate:
    return ChatTemplate(
        name=name,
        description=description,
        system="<|im_start|>system\n{content}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n",
        assistant="<|im_start|>assistant\n{content}<|im_end|>\n",
        tool="<|im_start|>tool\n{content}<|im_end|>\n",
        default_system=default_system,
        stop=("<|im_end|>",),
        markers=markers,
    )


def _llama3_turn(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{{content}}<|eot_id|>"


TEMPLATES: tuple[ChatTemplate, ...] = (
    _chatml("chatml", "ChatML <|im_start|>role ... <|im_end|> (SmolLM2, Qwen, many instruct models)",
            markers=("<|im_start|>", "<|im_end|>")),
    _chatml("qwen", "ChatML with Qwen's default system prompt", "You are a helpful assistant."),
    _chatml("qwen2_5", "ChatML with Qwen2.5's default system prompt (ms-swift's name)",
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    ChatTemplate(
        name="llama3",
        description="Llama 3 <|start_header_id|>role<|end_header_id|> ... <|eot_id|>",
        prefix="<|begin_of_text|>",
        system=_llama3_turn("system"),
        user=_llama3_turn("user"),
        assistant=_llama3_turn("assistant"),
        tool=_llama3_turn("ipython"),
        stop=("<|eot_id|>",),
        markers=("<|start_header_id|>", "<|eot_id|>"),
    ),
    ChatTemplate(
        name="llama2",
        description="Llama 2 chat [INST] ... [/INST] with <<SYS>> in the first turn",
        user="{bos}[INST] {content} [/INST]",
        assistant=" {content} {eos}",
        merge_system="<<SYS>>\n{system}\n<</SYS>>\n\n{user}",
    ),
    ChatTemplate(
        name="mistral",
        description="Mistral instruct [INST] ... [/INST] (system text joins the first user turn)",
        prefix="{bos}",
        user="[INST] {content} [/INST]",
        assistant="{content}{eos}",
    ),
    ChatTemplate(
        name="gemma",
        description="Gemma <start_of_turn>user / model ... <end_of_turn> (no system turn)",
        prefix="{bos}",
        user="<start_of_turn>user\n{content}<end_of_turn>\n",
        assistant="<start_of_turn>model\n{content}<end_of_turn>\n",
        stop=("<end_of_turn>",),
        markers=("<start_of_turn>", "<end_of_turn>"),
    ),
    ChatTemplate(
        name="phi3",
        description="Phi-3 <|user|> / <|assistant|> ... <|end|>",
        system="<|system|>\n{content}<|end|>\n",
        user="<|user|>\n{content}<|end|>\n",
        assistant="<|assistant|>\n{content}<|end|>\n",
        stop=("<|end|>",),
        markers=("<|assistant|>", "<|end|>"),
    ),
    ChatTemplate(
        name="baichuan",
        description="Baichuan chat <reserved_106> user / <reserved_107> assistant",
        system="{content}",
        user="<reserved_106>{content}",
        assistant="<reserved_107>{content}{eos}",
    ),
    ChatTemplate(
        name="internlm",
        description="InternLM chat <|User|>: ... <eoh> / <|Bot|>: ... <eoa>",
        prefix="{bos}",
        system="<|System|>:{content}\n",
        user="<|User|>:{content}<eoh>\n",
        assistant="<|Bot|>:{content}<eoa>\n",
        stop=("<eoa>",),
    ),
    ChatTemplate(
        name="alpaca",
        default_of_kind=True,  # base models whose tokenizer has no template and no known markers
        description="plain Alpaca ### Instruction: / ### Response: (base models without special tokens)",
        prefix="{bos}",
        system="{content}\n\n",
        user="### Instruction:\n{content}\n\n",
        assistant="### Response:\n{content}{eos}\n\n",
        default_system=(
            "Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request."
        ),
        stop=("### Instruction:",),
    ),
)
