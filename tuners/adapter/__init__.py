"""The 'adapter' tuner plugin: Houlsby bottleneck adapters after attention and MLP outputs."""

import swiftune

from .config import AdapterConfig
from .tuner import Adapter

__all__ = ["Adapter", "AdapterConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(Adapter)
