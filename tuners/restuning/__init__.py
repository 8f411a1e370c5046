"""The 'restuning' tuner plugin: Res-Tuning-Bypass, a ladder over detached backbone activations."""

import swiftune

from .config import ResTuningConfig
from .tuner import ResTuning

__all__ = ["ResTuning", "ResTuningConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(ResTuning)
