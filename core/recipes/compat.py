"""The few places where the transformers versions swiftune supports (see pyproject.toml) differ.

Each helper picks the spelling the installed version understands, so the recipes read the same on
the lowest supported release (tested by ``make test-min``) and on the newest.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=None)
def training_argument_names() -> frozenset[str]:
    """The field names of the installed ``transformers.TrainingArguments``."""
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments))


def activation_checkpointing(enabled: bool) -> dict[str, Any]:
    """``activation_checkpointing=`` (the name in newer transformers releases), else the older
    ``gradient_checkpointing=``; the older name is a deprecated alias in newer releases."""
    name = "activation_checkpointing" if "activation_checkpointing" in training_argument_names() else "gradient_checkpointing"
    return {name: enabled}
