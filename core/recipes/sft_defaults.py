"""sft's defaults that depend on the chosen tuner, in one place.

* The learning rate: 1e-3 suits LoRA and the tuners that learn at its rates on small models; a
  tuner that declares a higher ``typical_learning_rate`` than the base class (prompt and prefix
  tuning train a handful of virtual tokens) gets sft's rate scaled by the same factor, so
  ``swiftune sft --tuner prompt`` learns without a hand-picked ``--learning-rate``.
* Tuner fields whose library default (PEFT's, for the Python API) is not the one a fine-tuning
  run wants: ``RECIPE_TUNER_DEFAULTS``, applied when the field exists and was not given.

A value given by the user always wins; ``args.json`` records the values used.
"""

from __future__ import annotations

from typing import Any, Mapping

#: sft's learning rate for LoRA-like tuners (small models; 1e-4 to 2e-4 suit billion-parameter ones).
BASE_LEARNING_RATE = 1e-3

#: Tuner fields sft sets when not given (see the module docstring); empty: the tuners' own defaults.
RECIPE_TUNER_DEFAULTS: Mapping[str, Any] = {}


def learning_rate(args: Any) -> float:
    """The peak learning rate of an sft run: the one given, else sft's, scaled for the tuner."""
    if "learning_rate" in args.model_fields_set:
        return args.learning_rate
    from .. import registries
    from ..tuner import Tuner

    tuner = registries.tuners.get(args.tuner)
    factor = getattr(tuner, "typical_learning_rate", Tuner.typical_learning_rate) / Tuner.typical_learning_rate
    return BASE_LEARNING_RATE * max(1.0, factor)


def tuner_defaults(fields: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``RECIPE_TUNER_DEFAULTS`` for the fields this tuner has and the user did not set."""
    return {k: v for k, v in RECIPE_TUNER_DEFAULTS.items() if k in fields and k not in given}
