"""The private ``Trainer`` members ``SwiftTrainer`` relies on are listed in one module
(``swiftune.recipes.trainer_private``) and checked against the installed transformers: a release that
removes or changes one fails here, naming it, instead of as a wrong checkpoint or loss later."""

from __future__ import annotations

import inspect

import pytest
from transformers import Trainer

from swiftune.recipes.trainer import SwiftTrainer
from swiftune.recipes.trainer_private import DEPENDENCIES, problems


@pytest.mark.parametrize("dep", DEPENDENCIES, ids=lambda d: d.name)
def test_the_installed_trainer_meets_each_private_dependency(dep):
    mine = [p for p in problems() if f"Trainer.{dep.name} " in p]
    assert not mine, "\n".join(mine)


def test_every_private_override_is_listed():
    """A new override of a private Trainer member must be named in trainer_private.py."""
    listed = {d.name for d in DEPENDENCIES}
    overridden = {
        name
        for klass in SwiftTrainer.__mro__
        if klass.__module__.startswith("swiftune.")
        for name, value in vars(klass).items()
        if name.startswith("_") and not name.startswith("__") and callable(value) and hasattr(Trainer, name)
    }
    assert overridden, "SwiftTrainer overrides no private Trainer member: update this test"
    assert overridden <= listed, f"private Trainer members overridden but not listed: {sorted(overridden - listed)}"


def test_a_changed_trainer_is_reported_by_name():
    class Changed(Trainer):
        def _get_output_dir(self, trial, extra):  # a new parameter
            return ""

        def _save_checkpoint(self, model, trial):  # no longer asks _get_output_dir for its folder
            self.save_model("x", _internal_call=True)

    found = problems(Changed)
    assert any("Changed._get_output_dir now takes" in p for p in found), found
    assert any("Changed._save_checkpoint no longer uses _get_output_dir" in p for p in found), found
    assert len(found) == 2, found
    assert inspect.getattr_static(Trainer, "_get_output_dir")  # the real one is untouched
