"""The conformance suite's ``merge_two`` check: two adapters active together keep their logits when
merged, unless the tuner declares ``adapters_add_up = False`` (then the check is skipped)."""

from __future__ import annotations

from typing import Literal

import pytest

from swiftune.testing import conformance, model_case
from swiftune.tuners.lora import Lora, LoraConfig
from tuner_plugins import plugin  # noqa: F401 - the fixture


class FirstMergeOnlyConfig(LoraConfig):
    tuner: Literal["firstmerge"] = "firstmerge"


class FirstMergeOnly(Lora):
    """A tuner whose merges do not add up: merged after another adapter, its update is folded in at
    twice its scale (as a method that rescales the already merged weight would be off)."""

    name = "firstmerge"
    config_class = FirstMergeOnlyConfig
    merged: set[str] = set()

    def merge(self, model):
        if FirstMergeOnly.merged:
            for _, layer in self.layers(model):
                layer.scaling[self.adapter_name] *= 2
                layer.merge(self.adapter_name)
                layer.scaling[self.adapter_name] /= 2
            self.extra_modules.merged = True
        else:
            super().merge(model)
        FirstMergeOnly.merged.add(self.adapter_name)

    def unmerge(self, model):
        FirstMergeOnly.merged.discard(self.adapter_name)
        super().unmerge(model)


CONFIG = {"tuner": "firstmerge", "r": 2, "target_modules": ["q_proj", "v_proj"]}


def test_merge_two_catches_updates_that_do_not_add_up(plugin):
    plugin("firstmerge_plugin", FirstMergeOnly)
    case = model_case("llama")
    conformance.check_merge(CONFIG, case)  # one adapter merged alone is exact
    FirstMergeOnly.merged.clear()
    with pytest.raises(AssertionError, match="both adapters merged vs both unmerged"):
        conformance.check_merge_two(CONFIG, case)


def test_merge_two_is_skipped_where_the_tuner_says_so(plugin):
    declared = type("Declared", (FirstMergeOnly,), {"adapters_add_up": False})
    case = model_case("llama")
    assert "adapters_add_up = False" in conformance.skip_reason(declared, case, "merge_two")
    assert conformance.skip_reason(Lora, case, "merge_two") is None
