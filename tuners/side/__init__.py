"""The 'side' tuner plugin: side networks blended with block outputs through learned gates."""

import swiftune

from .config import SideConfig
from .tuner import Side

__all__ = ["Side", "SideConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(Side)
