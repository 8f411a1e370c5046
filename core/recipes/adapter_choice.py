"""Adapters under the names the user gives them (``--adapters name=path``), and running a model
with exactly one of them, or none: how deploy routes a request and eval compares each adapter
with the base."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError


def adapter_specs(values: list[str]) -> list[tuple[str, str]]:
    """``name=path`` pairs (a bare path is named after its folder); names must be distinct."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            path = value
            folder = Path(value.rstrip("/"))
            name = folder.parent.name if folder.name in ("final", "") else folder.name
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise ConfigError(f"--adapters: {value!r}: expected name=path")
        pairs.append((name, path))
    names = [n for n, _ in pairs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--adapters: the name(s) {', '.join(dupes)} are given twice; use name=path to tell them apart")
    return pairs


@dataclass
class NamedAdapters:
    built: Any  # rebuild's Rebuilt: the model (on the GPU when there is one, in eval mode), tokenizer, template
    names: dict[str, str]  # the user's name -> the adapter's name inside the model


def load_named(adapters: list[str], *, model: str | None, template: str | None, precision: str,
               trust_remote_code: bool | None) -> NamedAdapters:
    """The base model with every adapter of ``adapters`` (``name=path``) on it, ready to generate."""
    import torch

    from .infer import inference_dtype
    from .rebuild import rebuild
    from .vision import text_only_command

    pairs = adapter_specs(adapters)
    if not pairs and not model:
        raise ConfigError("--model: give a base model (and optionally --adapters name=path ...)")
    built = rebuild([path for _, path in pairs], model=model, template=template, dtype=inference_dtype(precision),
                    trust_remote_code=trust_remote_code)
    text_only_command(built.tokenizer, built.base, "deploy / eval")
    if torch.cuda.is_available():
        built.model = built.model.to("cuda")
    built.model.eval()
    return NamedAdapters(built, {public: internal for (public, _), internal in zip(pairs, built.adapters)})


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
