"""The 'peft' bridge: PEFT's own implementation of IA3, LoHa, LoKr, AdaLoRA, ... behind swiftune's API.

Registered under the tuner name "peft"; ``Swift.prepare(model, peft.IA3Config(...))`` lands here.
peft is imported only when such an adapter is used.
"""

import swiftune

from .config import DEFAULT_PEFT_CONFIG, PeftBridgeConfig
from .tuner import PeftBridge

__all__ = ["DEFAULT_PEFT_CONFIG", "PeftBridge", "PeftBridgeConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(PeftBridge)
