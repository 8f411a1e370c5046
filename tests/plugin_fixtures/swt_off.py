"""A good plugin, used to check SWIFTUNE_DISABLE_PLUGINS (it must not even be imported)."""

import swiftune
from swiftune.tuners.lora import Lora


class OffTuner(Lora):
    name = "offtuner"


@swiftune.hookimpl
def register_tuners(register):
    register(OffTuner)
