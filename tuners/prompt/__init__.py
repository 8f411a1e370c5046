"""The 'prompt' tuner plugin: trained virtual-token embeddings prepended to the input embeddings
(PEFT's prompt tuning; P-Tuning through its ``encoder_type`` option)."""

import swiftune

from .config import PromptConfig
from .tuner import PromptTuning

__all__ = ["PromptConfig", "PromptTuning"]


@swiftune.hookimpl
def register_tuners(register):
    register(PromptTuning)
