"""A plugin that registers a tuner whose name is not lowercase."""

import swiftune
from swiftune.tuners.lora import Lora


class Shouty(Lora):
    name = "Shouty"


@swiftune.hookimpl
def register_tuners(register):
    register(Shouty)
