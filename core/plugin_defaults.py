"""What swiftune uses when the user names nothing: asked of the plugins, never named by the core.

A plugin marks a registration as the default of its kind with ``default_of_kind = True``:

* a tuner class (``Lora.default_of_kind = True``): ``swiftune sft`` without ``--tuner``;
* a ``PackagedModel`` of a model family: ``sft`` / ``load_model()`` without a model;
* a ``DatasetEntry``: ``sft`` without ``--dataset``;
* a ``ChatTemplate``: the template of a tokenizer that has no Jinja template and none of the
  special tokens another template declares in ``markers``.

A tuner class with ``peft_fallback = True`` loads the PEFT configs no tuner claims by ``peft_type``
(``swiftune.peft_claims``) and ``peft.PeftConfig`` objects given to ``Swift.prepare``. A tuner
class's flags are its own, not inherited (QLoRA subclasses LoRA but is not the default).

When several registrations of a kind are marked, the built-in one (swiftune's own distribution)
wins, as for ``peft_type`` claims; two marked third-party ones and no built-in one are an error
naming both. None marked (the plugin that provides it is disabled or failed) is an error too.
"""

from __future__ import annotations

from typing import Any, Iterable

from . import registries
from .errors import ConfigError
from .plugins import DISABLE_ENV, OWN_DISTRIBUTION

#: The attribute a registration sets to be the default of its kind.
DEFAULT_FLAG = "default_of_kind"


def _is_builtin(plugin: str) -> bool:
    info = registries.host.plugins.get(plugin)
    return info is not None and info.distribution == OWN_DISTRIBUTION


def _choose(kind: str, marked: Iterable[tuple[str, str]]) -> str:
    """The one name among ``(name, plugin)`` pairs, by the rules above."""
    marked = list(marked)
    builtin = [name for name, plugin in marked if _is_builtin(plugin)]
    if len(builtin) == 1:
        return builtin[0]
    if len(marked) == 1:
        return marked[0][0]
    if not marked:
        raise ConfigError(
            f"no installed plugin provides a default {kind}; name one (swiftune list), or check "
            f"`swiftune plugins` for a failed or disabled ({DISABLE_ENV}) plugin"
        )
    names = " and ".join(f"'{name}' (plugin '{plugin}')" for name, plugin in marked)
    raise ConfigError(f"both {names} say they are the default {kind}; name one, or disable a plugin with {DISABLE_ENV}")


def _marked(obj: Any, flag: str = DEFAULT_FLAG) -> bool:
    """``flag`` set on ``obj`` itself: a tuner class's role is not inherited (QLoRA subclasses LoRA)."""
    if isinstance(obj, type):
        return bool(vars(obj).get(flag, False))
    return bool(getattr(obj, flag, False))


def default_tuner() -> str:
    """The tuner ``sft`` uses without ``--tuner``."""
    return _choose("tuner", ((e.name, e.plugin) for e in registries.tuners.entries() if _marked(e.obj)))


def default_dataset() -> str:
    """The dataset ``sft`` trains on without ``--dataset``."""
    return _choose("dataset", ((e.name, e.plugin) for e in registries.datasets.entries() if _marked(e.obj)))


def default_model() -> str:
    """The packaged model loaded when none is named."""
    marked = (
        (packaged.name, e.plugin) for e in registries.models.entries() for packaged in e.obj.packaged if _marked(packaged)
    )
    return _choose("model", marked)


def fallback_template() -> str:
    """The template of a tokenizer with neither a Jinja template nor any template's markers."""
    return _choose("chat template", ((e.name, e.plugin) for e in registries.templates.entries() if _marked(e.obj)))


def template_for_vocab(vocab: Any) -> str:
    """The registered template whose ``markers`` (special tokens) are all in ``vocab``, else the fallback."""
    for entry in registries.templates.entries():
        markers = getattr(entry.obj, "markers", ())
        if markers and all(m in vocab for m in markers):
            return entry.name
    return fallback_template()


def peft_fallback_tuner() -> str:
    """The tuner that runs PEFT configs no tuner claims (PEFT's own implementation)."""
    return _choose(
        "PEFT fallback tuner (peft_fallback)",
        ((e.name, e.plugin) for e in registries.tuners.entries() if _marked(e.obj, "peft_fallback")),
    )
