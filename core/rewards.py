"""``RewardFunction``: a named reward for GRPO, registered through the ``register_rewards`` hook.

A reward function scores a group of completions: it is called as TRL calls its reward functions,
``func(prompts=..., completions=..., completion_ids=..., **columns)`` where ``columns`` are the
dataset's other columns (e.g. ``solution``), one value per completion, and returns one float per
completion (or None where it does not apply). ``swiftune rlhf --rlhf_type grpo --reward_funcs NAME``
picks them by name.

    import swiftune
    from swiftune.rewards import RewardFunction

    def brevity(completions, **kwargs):
        return [-len(c) / 100 for c in completions]

    @swiftune.hookimpl
    def register_rewards(register):
        register(RewardFunction("brevity", brevity, "shorter is better"))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

Reward = Callable[..., list]


@dataclass(frozen=True)
class RewardFunction:
    """A registered reward: ``name`` (what ``--reward_funcs`` says), the callable, a one-line description."""

    name: str
    func: Reward
    description: str = ""

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise TypeError(f"reward '{self.name}': func must be callable, got {type(self.func).__name__}")

    def __call__(self, *args: Any, **kwargs: Any) -> list:
        return self.func(*args, **kwargs)

    def as_trl(self) -> Reward:
        """The callable TRL gets: named after the reward (TRL logs ``rewards/<name>/mean`` by ``__name__``)."""

        @functools.wraps(self.func)
        def reward(*args: Any, **kwargs: Any) -> list:
            return self.func(*args, **kwargs)

        reward.__name__ = self.name
        return reward


def completion_text(completion: Any) -> str:
    """A completion as text: TRL passes strings, or message lists for conversational prompts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)
