"""A plugin whose hook registers one tuner and then raises: nothing it registered may be kept."""

import swiftune
from swiftune.tuners.lora import Lora


class Halfway(Lora):
    name = "halfway"


@swiftune.hookimpl
def register_tuners(register):
    register(Halfway)
    raise RuntimeError("hook exploded after registering 'halfway'")
