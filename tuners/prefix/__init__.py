"""The 'prefix' tuner plugin: trained key/value prefixes in every layer's KV cache (PEFT's prefix tuning)."""

import swiftune

from .config import PrefixConfig
from .tuner import PrefixTuning

__all__ = ["PrefixConfig", "PrefixTuning"]


@swiftune.hookimpl
def register_tuners(register):
    register(PrefixTuning)
