"""A third-party GRPO reward function, shipped by entry point like any plugin.

``brevity`` rewards short completions: 1 for an empty one, falling by 0.1 per character.
"""

from __future__ import annotations

import swiftune
from swiftune.rewards import RewardFunction, completion_text


def brevity(completions, **columns):
    return [max(0.0, 1.0 - 0.1 * len(completion_text(c))) for c in completions]


@swiftune.hookimpl
def register_rewards(register):
    register(RewardFunction("brevity", brevity, "shorter completions score higher (test plugin)"))
