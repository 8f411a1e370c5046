"""Registering tuner classes from a test as if a third-party plugin had (its own distribution),
and removing them afterwards: the ``plugin`` fixture (``from tuner_plugins import plugin``)."""

from __future__ import annotations

import pytest

import swiftune
from swiftune import registries


class TunerPlugin:
    """A plugin object whose ``register_tuners`` hook registers the given tuner classes."""

    def __init__(self, *tuners: type) -> None:
        self.tuners = tuners

    @swiftune.hookimpl
    def register_tuners(self, register):
        for tuner in self.tuners:
            register(tuner)


@pytest.fixture
def plugin():
    """``plugin(name, *tuner_classes)`` adds a third-party plugin ``name`` (distribution
    ``swiftune-<name>``); every plugin added is removed after the test."""
    registries.tuners.names()
    added: list[str] = []

    def add(name: str, *tuners: type) -> None:
        registries.host.add_plugin(TunerPlugin(*tuners), name=name, distribution=f"swiftune-{name}")
        added.append(name)

    yield add
    for name in added:
        registries.host.remove_plugin(name)
