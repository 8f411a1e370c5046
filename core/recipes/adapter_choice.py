"""Run a model with exactly one of its adapters, or none: how deploy routes a request and eval
compares each adapter with the base."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def only_adapter(model: Any, name: str | None) -> Iterator[None]:
    """Inside the block only ``name`` is active (``None``: the base model alone); the previous
    selection is restored after it."""
    if not hasattr(model, "set_active_adapters"):  # a plain model: nothing to choose
        yield
        return
    if name is None:
        with model.disable_adapters():
            yield
        return
    previous = list(model.active_adapters)
    model.set_active_adapters([name])
    try:
        yield
    finally:
        model.set_active_adapters(previous)
