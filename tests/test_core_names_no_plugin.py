"""The core names no built-in plugin: defaults and fallbacks are registrations the plugins mark
(``swiftune.plugin_defaults``), so a reader of core/ finds no tuner, template, dataset or packaged
model name in its code, and a third-party plugin can stand in for any built-in."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Literal

import pytest

from swiftune import registries
from swiftune.errors import ConfigError
from swiftune.plugin_defaults import default_dataset, default_model, default_tuner, fallback_template, peft_fallback_tuner
from swiftune.recipes.arguments import SftArguments
from swiftune.tuners.lora import Lora, LoraConfig
from tuner_plugins import plugin  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

#: Entry-point names that are also ordinary words of the core's own vocabulary, so a literal of
#: them is not a reference to the plugin: "adapter" is a command's field (--adapter), "prompt" a
#: data column and a row kind.
ORDINARY_WORDS = {"adapter", "prompt"}

#: Files whose job is to translate another tool's names into the built-ins' (path -> why).
TRANSLATORS = {
    "core/recipes/aliases.py": "ms-swift's flags and template names -> the registered tuners and templates",
    "core/recipes/ms_swift.py": "ms-swift's train_type of a checkpoint -> the tuner that reads it",
    "core/recipes/diffusers_lora.py": "a diffusers LoRA file becomes a folder of the LoRA tuner",
    "core/testing/tokenizers.py": "the test tokenizer's 'chatml' option picks its Jinja template",
}


def builtin_names() -> set[str]:
    """The built-in tuners (swiftune's own entry points) and what the model_zoo plugin registers:
    templates, datasets and packaged models. Model families are left out: their names are also
    transformers' ``model_type`` values, which the core reads from checkpoints' configs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = set(project["project"]["entry-points"]["swiftune"])
    tuners = {e.name for e in registries.tuners.entries() if e.plugin in entry_points}
    zoo = {e.name for reg in (registries.templates, registries.datasets) for e in reg.entries() if e.plugin == "model_zoo"}
    packaged = {p.name for e in registries.models.entries() if e.plugin == "model_zoo" for p in e.obj.packaged}
    assert {"lora", "peft", "alpaca", "chatml"} <= tuners | zoo and packaged  # the list is not empty by mistake
    return (tuners | zoo | packaged) - ORDINARY_WORDS


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, value) of each string literal in ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_core_code_names_no_builtin_plugin():
    names = builtin_names()
    found: dict[str, list[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        hits = [f"{rel}:{line}: {value!r}" for line, value in _code_strings(path) if value.lower() in names]
        if hits:
            found[rel] = hits
    unexplained = [hit for rel, hits in found.items() if rel not in TRANSLATORS for hit in hits]
    assert not unexplained, (
        "the core names built-in plugins; mark the registration default_of_kind (or a tuner peft_fallback) and "
        "ask swiftune.plugin_defaults instead:\n" + "\n".join(unexplained)
    )
    stale = sorted(set(TRANSLATORS) - set(found))
    assert not stale, f"these files no longer name built-ins; drop them from TRANSLATORS: {stale}"


def test_the_demo_is_what_the_plugins_mark():
    args = SftArguments()
    assert (args.model, args.dataset, args.tuner) == (default_model(), [default_dataset()], default_tuner())
    assert registries.tuners.get(args.tuner).default_of_kind
    assert registries.datasets.get(args.dataset[0]).default_of_kind
    assert registries.templates.get(fallback_template()).default_of_kind
    assert registries.tuners.get(peft_fallback_tuner()).peft_fallback
    # A subclass does not inherit its parent's role (QLoRA subclasses LoRA).
    assert [n for n, t in registries.tuners.items() if vars(t).get("default_of_kind")] == [default_tuner()]


def _default_tuner_class(name: str) -> type[Lora]:
    config = type(f"{name}_config", (LoraConfig,), {"__annotations__": {"tuner": Literal[name]}, "tuner": name})
    return type(f"{name}_tuner", (Lora,), {"name": name, "config_class": config, "default_of_kind": True})


def test_a_third_party_default_stands_in_only_where_no_builtin_is_marked(plugin, monkeypatch):
    builtin = default_tuner()
    plugin("mine_plugin", _default_tuner_class("mine"))
    assert default_tuner() == builtin  # the built-in's mark wins, as for peft_type claims

    monkeypatch.setattr(registries.tuners.get(builtin), "default_of_kind", False)
    assert default_tuner() == "mine"
    assert SftArguments().tuner == "mine"

    plugin("other_plugin", _default_tuner_class("other"))
    with pytest.raises(ConfigError, match=r"'mine' \(plugin 'mine_plugin'\) and 'other' \(plugin 'other_plugin'\)"):
        default_tuner()


def test_no_marked_default_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(registries.tuners.get(default_tuner()), "default_of_kind", False)
    with pytest.raises(ConfigError, match="no installed plugin provides a default tuner"):
        SftArguments()
    assert SftArguments(tuner="lora").tuner == "lora"
