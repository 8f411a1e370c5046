"""What the chat demos share: ask the embedded model some questions, train, ask them again, print both.

``make demo`` (sft) and ``make dpo-demo`` (DPO) differ only in their data, questions and training call;
the scripts import this module from their own folder (``python examples/demo.py`` puts it on the path).
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from swiftune.recipes.arguments import DEFAULT_MODEL, GenerationArguments
from swiftune.recipes.generation import Generator
from swiftune.recipes.rebuild import rebuild


def answers(prompts: Sequence[str], adapters: list[str], generation: GenerationArguments) -> list[str]:
    """Answers to ``prompts`` from the base model plus ``adapters``, in one left-padded batch."""
    built = rebuild(adapters, model=None if adapters else DEFAULT_MODEL)
    generator = Generator(model=built.model, tokenizer=built.tokenizer, template=built.template)
    encoded = [generator.encode([{"role": "user", "content": p}]) for p in prompts]
    return generator.generate(encoded, generation)


def show(prompts: Sequence[str], before: list[str], after: list[str]) -> str:
    """Each question with its answer before and after tuning, wrapped for a terminal."""
    lines = []
    for prompt, old, new in zip(prompts, before, after):
        lines.append(f"Q: {prompt}")
        lines += textwrap.wrap(" ".join(old.split()), 96, initial_indent="  before: ", subsequent_indent=" " * 10)
        lines += textwrap.wrap(" ".join(new.split()), 96, initial_indent="  after:  ", subsequent_indent=" " * 10)
    return "\n".join(lines)


def ask_train_ask(
    prompts: Sequence[str], generation: GenerationArguments, out: Path, *,
    train: Callable[[], object], training: str, first_note: str = "",
) -> tuple[list[str], list[str], float]:
    """The three steps with their progress lines; prints the answers side by side.

    Returns the answers before and after and the ``time.monotonic()`` the demo started at.
    """
    start = time.monotonic()
    print(f"== 1/3  {DEFAULT_MODEL} before tuning{first_note}", flush=True)
    before = answers(prompts, [], generation)
    print(f"   ({time.monotonic() - start:.0f} s)\n== 2/3  {training} -> {out}", flush=True)
    train()
    print(f"   ({time.monotonic() - start:.0f} s)\n== 3/3  the same questions after tuning", flush=True)
    after = answers(prompts, [str(out)], generation)
    print("\n" + show(prompts, before, after))
    return before, after, start
