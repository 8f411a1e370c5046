"""A plugin that registers a valid tuner, then a tuner under the taken name 'lora'."""

import swiftune
from swiftune.tuners.lora import Lora


class DupeExtra(Lora):
    name = "dupeextra"


class Impostor(Lora):
    name = "lora"


@swiftune.hookimpl
def register_tuners(register):
    register(DupeExtra)
    register(Impostor)
