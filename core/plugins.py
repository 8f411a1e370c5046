"""Plugin discovery: entry points of group ``swiftune`` -> pluggy -> registries.

Discovery is lazy (first registry access), never at ``import swiftune``. It follows
``pluggy.PluginManager.load_setuptools_entrypoints`` but loads each entry point on its own, so a
plugin that fails to import, or whose hook raises, is recorded and skipped while the others load.
A hook's registrations are staged and kept only if the hook returns normally.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import DuplicateNameError, PluginError
from .registry import Registry

DISABLE_ENV = "SWIFTUNE_DISABLE_PLUGINS"
OWN_DISTRIBUTION = "swiftune"


@dataclass
class PluginInfo:
    """What ``swiftune plugins`` shows for one plugin."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    disabled: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class PluginHost:
    """Owns the pluggy manager, the registries it fills and the per-plugin report."""

    def __init__(
        self,
        hooks: dict[str, list[Registry]],
        entry_points: Callable[[], Iterable[md.EntryPoint]] | None = None,
    ) -> None:
        """``hooks``: hook name -> the registries its ``register`` feeds. ``entry_points``
        replaces the installed ``swiftune`` entry points (an isolated host in tests)."""
        self.hooks = hooks
        self._find_entry_points = entry_points or (lambda: md.entry_points(group=hookspecs.PROJECT))
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()
        for registries in hooks.values():
            for reg in registries:
                reg._ensure_loaded = self.ensure_loaded
                reg._failures = self.failures
                reg._disabled = self.disabled

    # -- discovery -------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        """Discover the plugins once. Other threads wait for it; a hook that reads a registry
        while loading (same thread, re-entrant lock) sees what is registered so far."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                self._load_entry_points()
            finally:
                self._loading = False
                self._loaded = True

    def _disabled_by_env(self) -> set[str]:
        return {n.strip().lower() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}

    def _entry_points(self) -> list[tuple[md.EntryPoint, md.Distribution | None]]:
        # ``entry_points`` sees each distribution once (the first on sys.path wins).
        eps = self._find_entry_points()
        # Our own distribution first, then the rest by name: duplicates blame the later plugin.
        return sorted(
            ((ep, getattr(ep, "dist", None)) for ep in eps),
            key=lambda pair: (_dist_name(pair[1]) != OWN_DISTRIBUTION, pair[0].name, _dist_name(pair[1])),
        )

    def _load_entry_points(self) -> None:
        disabled = self._disabled_by_env()
        for ep, dist in self._entry_points():
            if ep.name in self.plugins:  # two distributions claim one entry-point name
                first = self.plugins[ep.name].distribution
                name = f"{ep.name} [{_dist_name(dist)}]"
                self.plugins[name] = PluginInfo(
                    name=name,
                    distribution=_dist_name(dist),
                    version=dist.version if dist is not None else "",
                    module=ep.value,
                    errors=[f"not loaded: entry-point name '{ep.name}' is already used by distribution '{first}'"],
                )
                continue
            info = PluginInfo(
                name=ep.name,
                distribution=_dist_name(dist),
                version=dist.version if dist is not None else "",
                module=ep.value,
            )
            self.plugins[ep.name] = info
            if ep.name.lower() in disabled:
                info.disabled = True
                continue
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - isolation is the point
                info.errors.append(f"import failed: {_one_line(exc)}")
                continue
            self._register(module, info)

    def add_plugin(self, plugin: Any, name: str, distribution: str = "") -> PluginInfo:
        """Register a plugin object or module directly (tests, notebooks)."""
        self.ensure_loaded()
        with self._lock:
            if name in self.plugins:
                raise PluginError(f"a plugin named '{name}' is already loaded; remove_plugin('{name}') first")
            info = PluginInfo(name=name, distribution=distribution, module=getattr(plugin, "__name__", ""))
            self.plugins[name] = info
            self._register(plugin, info)
            return info

    def remove_plugin(self, name: str) -> None:
        with self._lock:
            info = self.plugins.pop(name, None)
            if info is None:
                return
            for registries in self.hooks.values():
                for reg in registries:
                    reg.remove_plugin(name)
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                self.pm.unregister(plugin, name=name)

    def _register(self, plugin: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # noqa: BLE001 - a malformed plugin is reported, not fatal
            info.errors.append(f"invalid plugin: {_one_line(exc)}")
            return
        for hook_name, registries in self.hooks.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name == info.name:
                    self._call_hook(hook_name, impl, registries, info)

    def _call_hook(self, hook_name: str, impl: Any, registries: list[Registry], info: PluginInfo) -> None:
        """Run one hook; its registrations are checked as they come and kept only if it returns."""
        staged: list[tuple[Registry, str, Any]] = []

        def register(obj: Any) -> None:
            for reg in registries:
                if reg.accepts(obj):
                    name = reg.check(obj, info.name)
                    for other_reg, other_name, other in staged:
                        if other_reg is reg and other_name == name and other is not obj:
                            raise DuplicateNameError(f"plugin '{info.name}' registers {reg.kind} '{name}' twice")
                    staged.append((reg, name, obj))
                    return
            kinds = " or ".join(r.kind for r in registries)
            raise TypeError(f"{hook_name} expects a {kinds}, got {obj!r}")

        try:
            impl.function(register=register)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            info.errors.append(f"{hook_name} raised {_one_line(exc)}")
            return
        for reg, name, obj in staged:
            reg.add(obj, info.name)
            names = info.registered.setdefault(reg.kind, [])
            if name not in names:
                names.append(name)

    # -- reports ---------------------------------------------------------------------------
    def failures(self) -> dict[str, str]:
        """Plugin name -> its errors on one line, for every plugin that failed."""
        return {n: "; ".join(i.errors) for n, i in self.plugins.items() if i.errors}

    def disabled(self) -> list[str]:
        return sorted(n for n, i in self.plugins.items() if i.disabled)

    def report(self) -> list[PluginInfo]:
        self.ensure_loaded()
        return [self.plugins[n] for n in sorted(self.plugins)]

    def reload(self) -> None:
        """Forget everything and discover again (tests; after installing a plugin)."""
        with self._lock:
            for registries in self.hooks.values():
                for reg in registries:
                    reg.clear()
            for name in list(self.plugins):
                plugin = self.pm.get_plugin(name)
                if plugin is not None:
                    self.pm.unregister(plugin, name=name)
            self.plugins.clear()
            self._loaded = False
        self.ensure_loaded()


def _dist_name(dist: md.Distribution | None) -> str:
    if dist is None:
        return ""
    return (dist.metadata["Name"] or "").lower()

