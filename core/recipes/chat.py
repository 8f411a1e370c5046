"""The interactive chat of ``swiftune infer``: streamed answers, history and a few commands.

Commands: ``/exit`` (or ``/quit``, Ctrl-D), ``/clear`` (forget the history), ``/system TEXT`` (set
the system prompt and clear the history; ``/system`` alone removes it), ``/history``, ``/help``. Multi-line
input: end a line with ``\\`` to continue it on the next line, or type ``/multi`` and finish the
block with a line holding only ``/end``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TextIO

from .arguments import InferArguments
from .generation import Generator

PROMPT = "<<< "
CONTINUE = "... "
ANSWER = ">>> "
HELP = (
    "commands: /exit  /clear  /system TEXT  /history  /multi (end with /end)  /help; "
    "a line ending with \\ continues on the next line"
)


class Chat:
    """One conversation: ``ask`` appends the user turn, streams the answer and records it."""

    def __init__(self, generator: Generator, args: InferArguments, out: TextIO = sys.stdout) -> None:
        self.generator = generator
        self.args = args
        self.out = out
        self.system = args.system
        self.history: list[dict[str, str]] = []

    def messages(self, user: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, *self.history, {"role": "user", "content": user}]

    def ask(self, user: str) -> str:
        prompt, dropped = self.generator.encode_counted(self.messages(user))
        if dropped:  # the history no longer fits: say so rather than forget silently
            self.out.write(f"(note: {dropped} tokens of the conversation's start were dropped to fit --max-length "
                           f"{self.generator.max_length}; /clear starts afresh)\n")
        self.out.write(ANSWER)
        self.out.flush()
        streamer = self.generator.streamer() if self.args.stream else None
        (answer,) = self.generator.generate([prompt], self.args, streamer=streamer)
        if streamer is None:  # the streamer ends its own line
            self.out.write(answer + "\n")
        self.out.flush()
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return answer

    def command(self, line: str) -> bool:
        """Handle a /command; False means leave the chat."""
        name, _, rest = line.partition(" ")
        if name in ("/exit", "/quit"):
            return False
        if name == "/clear":
            self.history = []
            self._note("history cleared")
        elif name == "/system":
            self.system = rest.strip() or None
            self.history = []
            self._note(f"system prompt {'set' if self.system else 'removed'}; history cleared")
        elif name == "/history":
            turns = [f"{m['role']}: {m['content']}" for m in self.history]
            self._note(" | ".join(turns) if turns else "no history")
        elif name == "/help":
            self._note(HELP)
        else:
            self._note(f"unknown command {name}; {HELP}")
        return True

    def _note(self, text: str) -> None:
        self.out.write(f"[{text}]\n")
        self.out.flush()


def read_message(read_line: Callable[[str], str]) -> str:
    """One user message: a line, ``\\``-continued lines, or a ``/multi`` ... ``/end`` block.

    Raises EOFError at end of input."""
    line = read_line(PROMPT)
    if line.strip() == "/multi":
        lines = []
        while (part := read_line(CONTINUE)).strip() != "/end":
            lines.append(part)
        return "\n".join(lines)
    lines = []
    while line.endswith("\\"):
        lines.append(line[:-1])
        line = read_line(CONTINUE)
    lines.append(line)
    return "\n".join(lines)


def _input(prompt: str) -> str:
    return input(prompt)


def chat_loop(generator: Generator, args: InferArguments, read_line: Callable[[str], str] = _input,
              out: TextIO = sys.stdout) -> Chat:
    """Run the chat until /exit or end of input; returns it (its history) for callers and tests."""
    if sys.stdin.isatty():
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:  # pragma: no cover - not on every platform
            pass
    chat = Chat(generator, args, out)
    out.write(f"[chat with {generator_name(generator)}; {HELP}]\n")
    out.flush()
    while True:
        try:
            text = read_message(read_line)
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            break
        stripped = text.strip()
        if not stripped:
            continue
        if stripped.startswith("/") and "\n" not in stripped:
            if not chat.command(stripped):
                break
            continue
        chat.ask(text)
    return chat


def generator_name(generator: Any) -> str:
    model = getattr(generator.model, "model", generator.model)
    config = getattr(model, "config", None)
    return str(getattr(config, "_name_or_path", "") or type(model).__name__)
