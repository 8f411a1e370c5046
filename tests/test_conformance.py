"""The conformance suite over every registered tuner, plus tests that the suite itself can fail.

New tuners join ``test_conformance`` automatically: the parameters come from the tuner registry
and the checks read capability flags, never tuner names.
"""

import subprocess
import sys
from typing import Literal

import pytest

from swiftune import registries
from swiftune.testing import conformance_cases, conformance_params, conformance_tests, model_case
from swiftune.testing.conformance import CHECKS, NotApplicable, run_check
from swiftune.testing.models import MODEL_CASES
from swiftune.tuners.lora import Lora, LoraConfig


def built_in_tuners() -> list[str]:
    """Tuners of this distribution; installed plugins (plugins/swiftune-ia3 ...) run the suite in
    their own tests, as any third party would."""
    return [
        name for name in registries.tuners.names()
        if registries.host.plugins[registries.tuners.entry(name).plugin].distribution == "swiftune"
    ]  # fmt: skip


@pytest.mark.parametrize("case", conformance_params(built_in_tuners()))
def test_conformance(case):
    case.run()


# The plugin author's recipe, used here for LoRA configurations its defaults do not reach.
test_lora_conv2d = conformance_tests("lora", models=["conv"], config={"target_modules": ["conv1", "conv2", "fc1"]})
test_lora_embedding = conformance_tests(
    "lora", models=["llama"], config={"target_modules": ["embed_tokens", "q_proj", "down_proj"]}
)
test_lora_modules_to_save = conformance_tests("lora", models=["bert", "mlp"], config={"modules_to_save": ["cls", "head"]})


def test_suite_covers_every_registered_tuner_model_and_check():
    tuners = built_in_tuners()
    assert {"lora", "qlora", "adapter", "prefix", "prompt", "side", "restuning", "part", "bitfit", "full", "peft"} <= set(tuners)
    ids = {p.id for p in conformance_params(tuners)}
    assert ids == {f"{t}-{m}-{c}" for t in tuners for m in MODEL_CASES for c in CHECKS}
    assert set(MODEL_CASES) == {"llama", "qwen2", "gpt2", "bert", "mlp", "conv"}


def test_models_are_deterministic_and_tiny():
    for name in MODEL_CASES:
        case = model_case(name)
        a, b = case.build(), case.build()
        assert not a.training
        assert sum(p.numel() for p in a.parameters()) < 100_000, name
        for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
            assert p.equal(q), f"{name}: {n} differs between two builds"
        batch = case.batch(0)
        assert case.batch(0).targets.equal(batch.targets)
        assert case.loss(a, batch).item() > 0.5


def test_import_is_lazy():
    code = (
        "import sys, swiftune, swiftune.testing; "
        "assert 'pytest' not in sys.modules, 'pytest'; assert 'transformers' not in sys.modules, 'transformers'; "
        "from swiftune.testing import conformance, models, params; "
        "assert 'pytest' not in sys.modules, 'pytest after submodules'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the checks fail on broken tuners (each variant is LoRA with one defect) -------------------------------
PLUGIN = "test_conformance"


def _variant(name: str, **attrs) -> type[Lora]:
    config = type(
        f"{name}_config", (LoraConfig,), {"__annotations__": {"tuner": Literal[name]}, "tuner": name, "peft_type": None}
    )
    return type(f"{name}_tuner", (Lora,), {"name": name, "config_class": config, **attrs})


@pytest.fixture
def register():
    registries.tuners.names()  # discover the real plugins first

    def add(name: str, **attrs) -> str:
        registries.tuners.add(_variant(name, **attrs), plugin=PLUGIN)
        return name

    yield add
    registries.tuners.remove_plugin(PLUGIN)


def _leaky_parameters(self, model):
    yield from Lora.named_trainable_parameters(self, model)
    yield next((n, p) for n, p in model.named_parameters() if "lora_" not in n)


def _never_off(self, model, active):
    Lora.set_active(self, model, True)


def _switches_everyone(self, model, active):
    for _, layer in self.layers(model):
        for name in list(layer.scaling):
            layer.set_adapter_active(name, active)


BROKEN = {
    "leaks_base": ({"named_trainable_parameters": _leaky_parameters}, "only_adapter_trains", "base parameters"),
    "never_off": ({"set_active": _never_off}, "disable", "adapters disabled"),
    "loads_nothing": ({"load_state_dict": lambda self, model, sd: None}, "save_load", "save / load"),
    "merges_nothing": ({"merge": lambda self, model: None}, "merge", "merge_and_unload logits"),
    "switches_all": ({"set_active": _switches_everyone}, "two_adapters", "inactive second adapter"),
}


@pytest.mark.parametrize("variant", list(BROKEN))
def test_check_catches_broken_tuner(register, variant):
    attrs, check, message = BROKEN[variant]
    name = register(f"broken_{variant}", **attrs)
    with pytest.raises(AssertionError, match=message):
        run_check(check, {"tuner": name}, model_case("mlp"))


@pytest.mark.parametrize(
    "config, check, message",
    [
        ({"lora_alpha": 1e-4}, "memorise", "loss went"),
    ],
)
def test_check_catches_misbehaving_config(config, check, message):
    with pytest.raises(AssertionError, match=message):
        run_check(check, {"tuner": "lora", **config}, model_case("mlp"))


def test_flags_decide_what_runs(register):
    register("flag_transformers_only", needs_transformers_model=True)
    register("flag_not_identity", identity_at_init=False)
    register("flag_trains_base", trains_base_parameters=True)
    skipped = {c.id: c.skip_reason() for c in conformance_cases(models=["llama", "mlp"]) if c.tuner.startswith("flag_")}
    assert all(skipped[f"flag_transformers_only-mlp-{c}"] for c in CHECKS)
    assert not any(skipped[f"flag_transformers_only-llama-{c}"] for c in CHECKS)
    assert skipped["flag_not_identity-llama-identity"] and not skipped["flag_not_identity-llama-merge"]
    assert skipped["flag_trains_base-llama-two_adapters"] and not skipped["flag_trains_base-llama-disable"]
    assert skipped["flag_not_identity-mlp-generate"] and not skipped["flag_not_identity-llama-generate"]
    with pytest.raises(NotApplicable, match="needs a transformers model"):
        run_check("merge", {"tuner": "flag_transformers_only"}, model_case("mlp"))


def test_non_mergeable_tuner_must_refuse_merging(register):
    name = register("flag_not_mergeable", mergeable=False)
    run_check("merge", {"tuner": name}, model_case("mlp"))  # passes through the NotMergeableError path
