"""Imported once by the forkserver of bench/child.py, so that each forked child starts warm.

Imports the model classes and PEFT's LoRA and runs swiftune's plugin discovery; computes nothing
(no torch thread pool exists yet, which is what makes forking safe).
"""

import peft  # noqa: F401
import transformers.models.llama.modeling_llama  # noqa: F401
from peft.tuners import lora  # noqa: F401

from swiftune import registries

registries.tuners.names()
registries.models.names()
