"""swiftune.testing: the conformance suite every tuner runs, built-in or third-party.

The checks read the tuner's capability flags (``mergeable``, ``identity_at_init``,
``prompt_learning``, ``trains_base_parameters``, ``needs_transformers_model``,
``default_targets_need_transformers``, ``memorises``) and never its name, so a plugin gets the same suite as the
built-ins. Flags are asked of the config under test (``Tuner.capabilities(config)``), so the suite
runs unchanged over non-default configs (``config={...}``; the test ids then name the fields). A tuner whose default targets need transformers structure skips the plain modules with
its default config; run with explicit targets (``config=...``) they are checked like any other.
Each runs the tuner with its default config on tiny llama, qwen2, gpt2 and bert models built from
configs, a plain MLP and a small conv net:

identity
    (``identity_at_init`` tuners) a fresh adapter leaves the logits unchanged.
only_adapter_trains
    a few AdamW steps change the adapter's parameters and nothing else.
disable
    ``with model.disable_adapters():`` gives the base logits exactly; leaving it restores the adapted ones.
save_load
    ``save_pretrained`` then ``Swift.from_pretrained(fresh_base, path)`` gives identical logits.
merge
    mergeable: merged == unmerged, unmerge restores, ``merge_and_unload`` returns a plain model
    with the same logits; otherwise ``merge_and_unload`` raises ``NotMergeableError``.
memorise
    (``memorises`` tuners) the loss on one fixed batch halves within 30 steps at the tuner's
    ``typical_learning_rate``.
generate
    (causal LMs) greedy ``generate`` emits the argmax of the adapted forward at every step.
two_adapters
    a second adapter coexists, switching selects each one's logits, deleting one keeps the other.

Using it in a plugin's tests (the whole file)::

    from swiftune.testing import conformance_tests

    test_ia3_conformance = conformance_tests("ia3")

``conformance_tests(name, models=["llama", "mlp"], checks=["merge"], config={"r": 4})`` narrows
the run or adds config fields. The same as an explicit parametrisation::

    import pytest
    from swiftune.testing import conformance_params

    @pytest.mark.parametrize("case", conformance_params(["ia3"]))
    def test_ia3(case):
        case.run()

Without pytest, call a check directly:
``swiftune.testing.conformance.check_merge({"tuner": "ia3"}, swiftune.testing.models.tiny_llama())``.

pytest and transformers are imported only when used, never by ``import swiftune``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "conformance_tests": "params",
    "conformance_params": "params",
    "conformance_cases": "params",
    "ConformanceCase": "params",
    "CHECKS": "conformance",
    "NotApplicable": "conformance",
    "run_check": "conformance",
    "ModelCase": "models",
    "Batch": "models",
    "MODEL_CASES": "models",
    "model_case": "models",
    "tiny_llama": "models",
    "tiny_qwen2": "models",
    "tiny_gpt2": "models",
    "tiny_bert": "models",
    "tiny_mlp": "models",
    "tiny_conv": "models",
    "TinyMLP": "models",
    "TinyConvNet": "models",
}

__all__ = list(_LAZY)


_SUBMODULES = ("conformance", "models", "params")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _LAZY:
        raise AttributeError(f"module 'swiftune.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .conformance import CHECKS, NotApplicable, run_check
    from .models import (
        MODEL_CASES,
        Batch,
        ModelCase,
        TinyConvNet,
        TinyMLP,
        model_case,
        tiny_bert,
        tiny_conv,
        tiny_gpt2,
        tiny_llama,
        tiny_mlp,
        tiny_qwen2,
    )
    from .params import ConformanceCase, conformance_cases, conformance_params, conformance_tests
