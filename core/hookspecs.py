"""The pluggy hook specifications every swiftune plugin may implement.

Each hook receives a ``register`` callable; calling it adds one entry to the matching registry.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "swiftune"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[Any], None]


@hookspec
def register_tuners(register: Register) -> None:
    """Register ``Tuner`` subclasses: ``register(MyTuner)``."""


@hookspec
def register_models(register: Register) -> None:
    """Register model families (``swiftune.model_zoo`` describes the entry type)."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets and ``DatasetAdapter`` classes."""


@hookspec
def register_templates(register: Register) -> None:
    """Register chat templates."""


@hookspec
def register_rewards(register: Register) -> None:
    """Register GRPO reward functions: ``register(swiftune.rewards.RewardFunction(name, func))``."""
