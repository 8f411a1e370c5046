"""The 'full' tuner plugin: full-parameter fine-tuning through swiftune's API, Trainer and CLI."""

import swiftune

from .config import FullConfig
from .tuner import Full

__all__ = ["Full", "FullConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(Full)
