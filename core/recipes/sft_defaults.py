"""sft's defaults that depend on the chosen tuner, in one place.

* Tuner fields whose library default (PEFT's, for the Python API) is not the one a fine-tuning
  run wants: ``RECIPE_TUNER_DEFAULTS``, applied when the field exists and was not given. LoRA's
  ``lora_alpha`` is 32 (ms-swift's value; r=8 scales updates by 4) instead of PEFT's 8.
* The learning rate: 5e-4 for the LoRA family (with that alpha), 1e-3 for other tuners; a tuner
  that declares a higher ``typical_learning_rate`` than the base class (prompt and prefix tuning
  train a handful of virtual tokens) gets it scaled by the same factor, so
  ``swiftune sft --tuner prompt`` learns without a hand-picked ``--learning-rate``.

Measured with ``bench/defaults_check.py`` (80 rows of one rule, 3 epochs, 30 unseen inputs on
the embedded model, two data splits): the earlier defaults (alpha 8, 1e-3, 5% warmup) scored
25 and 26 of 30; these (alpha 32, 5e-4, no warmup) 27 and 28.

A value given by the user always wins; ``args.json`` records the values used.
"""

from __future__ import annotations

from typing import Any, Mapping

#: sft's learning rate for tuners outside the LoRA family (small models).
BASE_LEARNING_RATE = 1e-3
#: sft's learning rate for the LoRA family (tuners with ``lora_alpha``), with its alpha of 32.
LORA_LEARNING_RATE = 5e-4

#: Tuner fields sft sets when not given (see the module docstring).
RECIPE_TUNER_DEFAULTS: Mapping[str, Any] = {"lora_alpha": 32}


def learning_rate(args: Any) -> float:
    """The peak learning rate of an sft run: the one given, else sft's, scaled for the tuner."""
    own_default = type(args).model_fields["learning_rate"].default != LORA_LEARNING_RATE
    if "learning_rate" in args.model_fields_set or own_default:  # given, or a command's own (rlhf: 1e-4)
        return args.learning_rate
    from .. import registries
    from ..tuner import Tuner

    tuner = registries.tuners.get(args.tuner)
    factor = getattr(tuner, "typical_learning_rate", Tuner.typical_learning_rate) / Tuner.typical_learning_rate
    lora_family = "lora_alpha" in tuner.config_class.model_fields
    return (LORA_LEARNING_RATE if lora_family else BASE_LEARNING_RATE) * max(1.0, factor)


def tuner_defaults(fields: Mapping[str, Any], given: Mapping[str, Any], command: type | None = None) -> dict[str, Any]:
    """``RECIPE_TUNER_DEFAULTS`` for the fields this tuner has and the user did not set. They come
    with sft's learning rate: a command with its own learning-rate default (rlhf) keeps the
    tuners' library defaults too."""
    if command is not None and command.model_fields["learning_rate"].default != LORA_LEARNING_RATE:
        return {}
    return {k: v for k, v in RECIPE_TUNER_DEFAULTS.items() if k in fields and k not in given}
