"""The selective tuners: ``part`` (parameters chosen by regex) and ``bitfit`` (biases, optionally norms).

Both train a zero-initialised per-adapter delta of existing parameters, so the base stays frozen.
"""

import swiftune

from .config import BitFitConfig, PartConfig
from .tuner import BitFit, Part

__all__ = ["BitFit", "BitFitConfig", "Part", "PartConfig"]


@swiftune.hookimpl
def register_tuners(register):
    register(Part)
    register(BitFit)
