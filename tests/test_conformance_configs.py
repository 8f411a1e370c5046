"""The conformance suite over non-default configs of every built-in tuner.

The defaults run in test_conformance; the configs here change what a tuner trains or how
(bias modes, rsLoRA, dropout, modules_to_save, initialisation, encoders, selections), which is
where capability flags that depend on the config matter. Models are picked where the config has
an effect (biases: gpt2 / mlp / bert / conv). Each case takes well under a second.
"""

from __future__ import annotations

from typing import Any

import pytest

from swiftune.testing import conformance_params
from swiftune.testing.conformance import CHECKS

MEMORISE = "memorise"  # 30 training steps: run only where the config changes how the adapter learns

MATRIX: list[tuple[str, dict[str, Any], list[str], bool]] = [
    # (tuner, non-default fields, models, run the memorise check too)
    ("lora", {"bias": "all"}, ["gpt2", "mlp"], True),
    ("lora", {"bias": "lora_only", "use_rslora": True, "r": 4, "lora_alpha": 16}, ["bert", "conv"], True),
    ("lora", {"lora_dropout": 0.1, "init_lora_weights": "gaussian"}, ["llama"], False),
    ("lora", {"modules_to_save": ["head"], "bias": "all", "target_modules": ["fc1", "fc2"]}, ["mlp"], False),
    ("lora", {"init_lora_weights": False}, ["mlp"], False),
    ("qlora", {"bias": "lora_only", "use_rslora": True, "lora_dropout": 0.1}, ["gpt2"], False),
    ("qlora", {"quantize_modules": None, "target_modules": ["q_proj", "v_proj"]}, ["llama"], False),
    ("adapter", {"act": "relu", "dropout": 0.1, "adapter_dim": 4}, ["qwen2"], False),
    ("side", {"alpha_init": 2.0, "dropout": 0.1, "side_width": 8}, ["gpt2"], False),
    ("restuning", {"bypass_dim": 8, "act": "relu", "dropout": 0.1}, ["gpt2"], False),
    ("prefix", {"prefix_projection": True, "num_virtual_tokens": 3, "encoder_hidden_size": 8}, ["llama"], False),
    ("prompt", {"num_virtual_tokens": 3, "prompt_tuning_init": "SAMPLE_VOCAB"}, ["qwen2"], False),
    ("part", {"target_parameters": r".*\.bias", "exclude_parameters": ["head.bias"]}, ["mlp"], False),
    ("bitfit", {"norms": True}, ["gpt2"], False),
    ("full", {"freeze_parameters": ["fc1.weight"]}, ["mlp"], False),
    ("peft", {"peft_config": {"peft_type": "LORA", "r": 2, "target_modules": ["fc1", "head"], "use_rslora": True,
                              "lora_dropout": 0.1}}, ["mlp"], False),
]


def _params() -> list[Any]:
    out: list[Any] = []
    for tuner, config, models, memorise in MATRIX:
        checks = [c for c in CHECKS if memorise or c != MEMORISE]
        out += conformance_params([tuner], models=models, config=config, checks=checks)
    return out


@pytest.mark.parametrize("case", _params())
def test_conformance_non_default(case):
    case.run()


def test_matrix_covers_every_built_in_tuner():
    from test_conformance import built_in_tuners

    assert set(built_in_tuners()) <= {t for t, *_ in MATRIX}
