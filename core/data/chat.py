"""Which chat template a tokenizer gets, and rendering a conversation with its trainable spans.

Two renderers give the same thing, text plus the character spans of the assistant answers:

* ``TemplateRenderer`` for a registered ``ChatTemplate`` knows the spans by construction.
* ``JinjaRenderer`` uses the tokenizer's own Jinja template, which need not have
  ``{% generation %}`` tags (SmolLM2's has none). It renders the conversation up to each
  assistant turn with the generation prompt, then up to and including that turn: the answer
  is what the second adds to the first, minus trailing whitespace, so it ends with the
  template's end-of-turn token. A template that renders earlier turns differently once later
  ones exist breaks this, and is reported rather than masked wrongly.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from ..template import ChatTemplate, RenderedChat
from .errors import DataError

Messages = Sequence[Mapping[str, Any]]
AUTO = "auto"
#: ``template="tokenizer"``: insist on the tokenizer's own Jinja template.
TOKENIZER = "tokenizer"



class Renderer(Protocol):
    name: str
    stop: tuple[str, ...]

    def render(self, messages: Messages) -> RenderedChat: ...

    def prompt(self, messages: Messages) -> str: ...


class TemplateRenderer:
    """A registered ``ChatTemplate`` filled with the tokenizer's bos / eos strings."""

    def __init__(self, template: ChatTemplate, tokenizer: Any = None) -> None:
        self.template = template
        self.name = template.name
        self.stop = template.stop
        self._bos = (getattr(tokenizer, "bos_token", None) or "") if tokenizer is not None else ""
        self._eos = (getattr(tokenizer, "eos_token", None) or "") if tokenizer is not None else ""

    def render(self, messages: Messages) -> RenderedChat:
        return self.template.render(messages, bos=self._bos, eos=self._eos)

    def prompt(self, messages: Messages) -> str:
        return self.template.render(messages, add_generation_prompt=True, bos=self._bos, eos=self._eos).text


class JinjaRenderer:
    """The tokenizer's own chat template; answer spans found by incremental rendering."""

    name = TOKENIZER
    stop: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise DataError("the tokenizer has no chat template; pass a registered template (swiftune list templates)")
        self.tokenizer = tokenizer

    def _apply(self, messages: Messages, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def render(self, messages: Messages) -> RenderedChat:
        full = self._apply(messages, False)
        spans: list[tuple[int, int]] = []
        for i, msg in enumerate(messages):
            if msg.get("role") != "assistant":
                continue
            before = self._apply(messages[:i], True) if i else self._empty_prompt()
            upto = full if i + 1 == len(messages) else self._apply(messages[: i + 1], False)
            if not (upto.startswith(before) and full.startswith(upto)):
                raise DataError(
                    f"the tokenizer's chat template renders turn {i} differently once later turns follow, so the "
                    "assistant tokens cannot be located; pass a registered template (swiftune list templates)"
                )
            end = len(upto.rstrip())
            if end > len(before):
                spans.append((len(before), end))
        return RenderedChat(full, tuple(spans))

    def prompt(self, messages: Messages) -> str:
        return self._apply(messages, True)

    def _empty_prompt(self) -> str:
        """The generation prompt of an empty conversation ("" where the template cannot render one)."""
        try:
            return self._apply([], True)
        except Exception:  # noqa: BLE001 - templates may index messages[0]
            return ""


def default_template_name(tokenizer: Any) -> str:
    """The fallback for a tokenizer without a Jinja template: the registered template whose
    ``markers`` (special tokens) it has, else the one marked ``default_of_kind``."""
    from ..plugin_defaults import fallback_template, template_for_vocab

    if tokenizer is None:
        return fallback_template()
    return template_for_vocab(tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {})


def get_renderer(tokenizer: Any, template: str | ChatTemplate | Renderer | None = None) -> Renderer:
    """The renderer for ``template``: a ``ChatTemplate``, a registered name, ``"tokenizer"``, a
    renderer (returned as is), or None / ``"auto"`` (the tokenizer's Jinja template when it has one,
    else the template whose special tokens it has, or the default template: see ``default_template_name``)."""
    if isinstance(template, (TemplateRenderer, JinjaRenderer)):
        return template
    if isinstance(template, ChatTemplate):
        return TemplateRenderer(template, tokenizer)
    if template in (None, AUTO):
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return JinjaRenderer(tokenizer)
        template = default_template_name(tokenizer)
    if template == TOKENIZER:
        return JinjaRenderer(tokenizer)
    from .. import registries

    return TemplateRenderer(registries.templates.get(template), tokenizer)


def render_prompt(messages: Messages, tokenizer: Any, template: str | ChatTemplate | None = None) -> str:
    """The text to generate from: ``messages`` then the assistant header, in the chosen template."""
    return get_renderer(tokenizer, template).prompt(messages)
