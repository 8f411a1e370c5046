"""``ChatTemplate``: the entry type of the ``templates`` registry.

A tokenizer that ships a Jinja chat template is used as is; a ``ChatTemplate`` is the fallback for
tokenizers without one (base models) or the explicit choice (``--template chatml``). It is
declarative on purpose: each turn is a format string with one ``{content}`` slot, so the renderer
knows exactly where every assistant answer starts and ends and the loss mask needs no guessing.

Formats may also use ``{bos}`` / ``{eos}`` (the tokenizer's special tokens, "" when it has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class RenderedChat:
    """A rendered conversation and the character spans that carry the loss (assistant turns)."""

    text: str
    #: ``(start, end)`` character offsets into ``text``: each assistant answer plus its end token.
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ChatTemplate:
    """How one model family lays out a conversation as text.

    ``assistant`` is the whole assistant turn, e.g. ``"<|im_start|>assistant\\n{content}<|im_end|>\\n"``:
    what precedes ``{content}`` is the generation prompt; ``{content}`` and what follows it, minus
    trailing whitespace, is trained on (so the model learns to emit the end token and stop).
    ``system=None`` means the format has no system turn: the system text is put in front of the
    first user message instead.
    """

    name: str
    description: str
    user: str
    assistant: str
    system: str | None = None
    tool: str | None = None
    prefix: str = ""
    default_system: str | None = None
    #: With ``system=None``: how the system text joins the first user message.
    merge_system: str = "{system}\n\n{user}"
    #: Strings that end an answer at inference (besides the tokenizer's eos).
    stop: tuple[str, ...] = field(default=())
    #: Special tokens that identify this format in a tokenizer without a Jinja template (all must
    #: be in its vocabulary); ``swiftune.plugin_defaults.template_for_vocab`` reads them.
    markers: tuple[str, ...] = field(default=())
    #: The template of a tokenizer with neither a Jinja template nor any template's markers.
    default_of_kind: bool = False

    def __post_init__(self) -> None:
        for part in ("user", "assistant", "system", "tool"):
            fmt = getattr(self, part)
            if fmt is not None and fmt.count("{content}") != 1:
                raise ValueError(f"template '{self.name}': the {part} format needs exactly one '{{content}}'")
        if not 0 <= self.merge_system.find("{system}") < self.merge_system.find("{user}"):
            raise ValueError(f"template '{self.name}': merge_system needs '{{system}}' before '{{user}}'")

    # -- rendering ------------------------------------------------------------------------------
    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = False,
        bos: str = "",
        eos: str = "",
    ) -> RenderedChat:
        """Lay ``messages`` out as text; ``add_generation_prompt`` appends the assistant header."""
        messages = self._place_system(messages)
        parts: list[str] = [self._fill(self.prefix, bos, eos)]
        spans: list[tuple[int, int]] = []
        pos = len(parts[0])
        for i, msg in enumerate(messages):
            role = msg.get("role")
            if role not in ROLES:
                raise ValueError(f"template '{self.name}': message {i} has role {role!r}; expected one of {', '.join(ROLES)}")
            before, after = self._split(self._format_of(role), bos, eos)
            content = str(msg.get("content") or "")
            text = before + content + after
            if role == "assistant":
                start = pos + len(before)
                spans.append((start, start + len((content + after).rstrip())))
            parts.append(text)
            pos += len(text)
        if add_generation_prompt:
            parts.append(self.generation_prompt(bos=bos, eos=eos))
        return RenderedChat("".join(parts), tuple(spans))

    def generation_prompt(self, *, bos: str = "", eos: str = "") -> str:
        """The text that opens an assistant turn (what a prompt ends with before generating)."""
        return self._split(self.assistant, bos, eos)[0]

    # -- helpers --------------------------------------------------------------------------------
    def _format_of(self, role: str) -> str:
        if role == "assistant":
            return self.assistant
        if role == "system":
            return self.system if self.system is not None else self.user
        if role == "tool":
            return self.tool if self.tool is not None else self.user
        return self.user

    def _place_system(self, messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Add the default system prompt; fold the system turn into the first user turn if needed."""
        msgs = list(messages)
        has_system = bool(msgs) and msgs[0].get("role") == "system"
        if not has_system and self.default_system is not None:
            msgs.insert(0, {"role": "system", "content": self.default_system})
            has_system = True
        if self.system is None and has_system:
            system, rest = msgs[0], msgs[1:]
            first_user = bool(rest) and rest[0].get("role") == "user"
            head, tail = self.merge_system.split("{system}", 1)
            middle, end = tail.split("{user}", 1)
            user = str(rest[0].get("content") or "") if first_user else ""
            merged = head + str(system.get("content") or "") + middle + user + end
            return [{"role": "user", "content": merged}, *(rest[1:] if first_user else rest)]
        return msgs

    @staticmethod
    def _fill(fmt: str, bos: str, eos: str) -> str:
        return fmt.replace("{bos}", bos).replace("{eos}", eos)

    def _split(self, fmt: str, bos: str, eos: str) -> tuple[str, str]:
        before, after = self._fill(fmt, bos, eos).split("{content}", 1)
        return before, after
