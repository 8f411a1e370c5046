"""The core reads top-down (docs/architecture.md, "Layers, top-down"): interfaces, registries and
plugins, the adapted model, models and data, recipes, CLI. A module imports, at module level, only
modules of its own layer or of the layers before it, and no module-level import cycle exists in
the core. (Imports inside functions are not checked: they run when called, after every layer is
loaded.) A module whose layer the table below does not know fails here, naming it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

#: Top-level core modules by layer; everything else in core/ is placed by its subpackage below.
INTERFACES = {
    "hookspecs", "errors", "config", "tuner", "layers", "template", "dataset", "model_family", "rewards",
    # the adapter folder's format, which the Tuner base class reads and writes
    "serialization", "files",
}
REGISTRIES = {"registry", "plugins", "registries", "config_dispatch", "peft_claims", "peft_quiet", "plugin_defaults"}
MODEL = {
    "swift_model", "api", "rollback", "adapter_dtype", "module_utils", "structure", "wrapper_tuner",
    "modules_to_save", "frozen_weights", "fused_loss", "loraplus", "hub_kernels",
}
SUBPACKAGES = {"loading": 4, "data": 4, "recipes": 5, "evaluation": 5, "serve": 5, "cli": 6, "testing": 7}
#: Modules of a subpackage that sit lower than the rest of it (exception types are interfaces).
EXCEPTIONS = {"swiftune.data.errors": 1}
LAYER_NAMES = {1: "interfaces", 2: "registries", 3: "the adapted model", 4: "models and data", 5: "recipes",
               6: "CLI", 7: "testing (beside)"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["swiftune", *parts])


MODULES = {module_name(p): p for p in CORE.rglob("*.py")}


def layer(name: str) -> int | None:
    """The layer of ``swiftune.<...>`` (None: the package itself and ``__main__``, which sit above all)."""
    if name in EXCEPTIONS:
        return EXCEPTIONS[name]
    parts = name.split(".")[1:]
    if not parts or parts == ["__main__"]:
        return None
    top = parts[0]
    if top in SUBPACKAGES:
        return SUBPACKAGES[top]
    for number, members in ((1, INTERFACES), (2, REGISTRIES), (3, MODEL)):
        if top in members:
            return number
    raise AssertionError(f"core module {name} has no layer in tests/test_layers.py (add it, and to docs/architecture.md)")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: top level, class bodies, ``if`` / ``try``
    blocks, but not function bodies nor ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If) and not _is_type_checking(node.test):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    walk(block)
            elif isinstance(node, ast.ClassDef):
                walk(node.body)

    walk(tree.body)
    return found


def imported_core_modules(name: str) -> set[str]:
    """The core modules ``name`` imports at module level (``from . import x`` counts x)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        targets.add(target)
        targets.update(f"{target}.{a.name}" for a in node.names)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: imported_core_modules(name) for name in MODULES}


def test_the_walk_sees_the_core_and_its_imports():
    assert len(MODULES) > 50
    assert "swiftune.config" in GRAPH["swiftune.tuner"]  # from .config import TunerConfig
    assert "swiftune.registries" in GRAPH["swiftune.config_dispatch"]  # from . import registries
    assert "swiftune.recipes.run_folder" in GRAPH["swiftune.recipes.sft"]
    assert "swiftune.config_dispatch" not in GRAPH["swiftune.config"]  # only inside functions there
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\ndef f():\n    import c\nclass K:\n    import d\n")
    assert [n.names[0].name for n in module_level_imports(tree)] == ["a", "d"]


def test_no_module_imports_a_higher_layer_at_module_level():
    upward = []
    for name, imports in sorted(GRAPH.items()):
        own = layer(name)
        if own is None:
            continue
        for target in sorted(imports):
            theirs = layer(target)
            if theirs is not None and theirs > own:
                upward.append(f"{name} ({LAYER_NAMES[own]}) imports {target} ({LAYER_NAMES[theirs]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_level_import_cycle_in_the_core():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check finds one
    assert not _cycles(GRAPH), f"module-level import cycles: {_cycles(GRAPH)}"


def test_importing_the_lower_layers_loads_no_higher_one():
    """Imported for real, in layer order: after layers 1..k no module of a higher layer is loaded
    (a subpackage's lazy ``__init__`` aside: ``swiftune.data.errors`` loads ``swiftune.data``)."""
    layers = {n: layer(n) for n in MODULES if layer(n) is not None and MODULES[n].name != "__init__.py"}
    lower = {n: number for n, number in layers.items() if number <= 3}
    script = f"""
import importlib, sys
layers = {layers!r}
import swiftune
baseline = set(sys.modules)  # what the package's own import loads (hub_kernels' guard) sits above all
for number in (1, 2, 3):
    for name in sorted(n for n, k in {lower!r}.items() if k == number):
        importlib.import_module(name)
    above = sorted(m for m in set(sys.modules) - baseline if layers.get(m, 0) > number)
    if above:
        print(f"after importing layers 1..{{number}}: {{above}} (a higher layer) are loaded")
        sys.exit(1)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
