"""LoRA, the first built-in plugin: registered through the `swiftune` entry point like any other."""

import swiftune

from .config import LoraConfig
from .tuner import Lora

__all__ = ["Lora", "LoraConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(Lora)
