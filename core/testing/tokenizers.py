"""A tiny word-level tokenizer built on the fly, for tests of templates, masks and data.

One word (``\\w+``) or run of punctuation is one token and whitespace is dropped, so a test can
write the expected token ids by hand: ``[VOCAB[w] for w in "<|im_start|> user Hi <|im_end|>".split()]``.
Chat markers of the built-in templates are special tokens. Nothing is downloaded.
"""

from __future__ import annotations

from typing import Any, Iterable

#: Special tokens first (ids 0..): pad, unk, bos, eos, then the chat markers.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<unk>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)

#: Ordinary words of the default vocabulary (enough for the tests' conversations).
WORDS: tuple[str, ...] = tuple(
    """system user assistant tool ipython
    Hello Hi hi there How are you I am fine thanks What is the capital of France Paris It
    Who made made by Swifty here swiftune team name my your a an and to in 2 3 4 5 7 12
    You helpful AI named SmolLM trained Hugging Face be brief Tell me joke No Why Because
    Below instruction that describes task Write response appropriately completes request
    Instruction Response Input good bad great movie text label yes no one two three four five six seven
    eight nine ten""".split()
) + ("!", "?", ".", ",", ":", "###", "+", "=", "'", "-")

#: A ChatML template in the style of SmolLM2's: a default system prompt, no generation tags.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI named SmolLM<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

#: The same layout with ``{% generation %}`` tags around assistant answers (for
#: ``return_assistant_tokens_mask``), used to cross-check swiftune's own masks.
CHATML_GENERATION_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI named SmolLM<|im_end|>\\n' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def tiny_vocab(extra_words: Iterable[str] = ()) -> dict[str, int]:
    """Token -> id of ``tiny_tokenizer(extra_words=...)``: special tokens, then words in order."""
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *WORDS, *extra_words):
        vocab.setdefault(token, len(vocab))
    return vocab


def tiny_tokenizer(chat_template: str | None = None, extra_words: Iterable[str] = (), **kwargs: Any):
    """A ``PreTrainedTokenizerFast`` over ``tiny_vocab``; ``chat_template`` is a Jinja string or
    ``"chatml"`` for ``CHATML_TEMPLATE``. Unknown words become ``<unk>``. ``kwargs`` go to the
    transformers constructor (e.g. ``padding_side``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = tiny_vocab(extra_words)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        **kwargs,
    )
    if chat_template is not None:
        tok.chat_template = CHATML_TEMPLATE if chat_template == "chatml" else chat_template
    return tok
