"""Name -> object registries, filled by plugins through the hooks in ``hookspecs``.

A registry remembers which plugin registered each name, so a duplicate names both plugins and a
missing name can point at a plugin that failed to load.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
#: Names that may carry one owner part, as ms-swift names its datasets (``swift/self-cognition``).
OWNED_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)?$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """One kind of named thing (tuners, models, ...).

    ``accepts`` decides whether an object registered through a hook belongs here, so one hook
    may feed several registries (``register_datasets`` takes datasets and dataset adapters).
    """

    def __init__(
        self,
        kind: str,
        accepts: Callable[[Any], bool] = lambda obj: True,
        name_of: Callable[[Any], str] = lambda obj: obj.name,
        pattern: re.Pattern[str] = _NAME,
    ) -> None:
        self.kind = kind
        self.pattern = pattern
        self.accepts = accepts
        self.name_of = name_of
        self._entries: dict[str, Entry[T]] = {}
        self._ensure_loaded: Callable[[], None] = lambda: None
        self._failures: Callable[[], dict[str, str]] = dict
        self._disabled: Callable[[], list[str]] = list

    # -- filling -------------------------------------------------------------------------
    def check(self, obj: T, plugin: str) -> str:
        """The name ``obj`` would be registered under; raises if it is invalid or taken."""
        name = self.name_of(obj)
        if not isinstance(name, str) or not self.pattern.match(name):
            owner = " (and one '/' after an owner)" if self.pattern is OWNED_NAME else ""
            raise ValueError(
                f"{self.kind} name {name!r} from plugin '{plugin}' must be lowercase "
                f"letters, digits, '_', '-' or '.'{owner}"
            )
        old = self._entries.get(name)
        if old is not None and old.obj is not obj:
            raise DuplicateNameError(
                f"{self.kind} '{name}' is registered by both plugin '{old.plugin}' and plugin "
                f"'{plugin}'; disable one with SWIFTUNE_DISABLE_PLUGINS={plugin}"
            )
        return name

    def add(self, obj: T, plugin: str) -> str:
        """Register ``obj``. The same object registered again keeps its first plugin."""
        name = self.check(obj, plugin)
        self._entries.setdefault(name, Entry(name, obj, plugin))
        return name

    def remove_plugin(self, plugin: str) -> None:
        self._entries = {k: e for k, e in self._entries.items() if e.plugin != plugin}

    def clear(self) -> None:
        self._entries.clear()

    # -- reading -------------------------------------------------------------------------
    def _entries_loaded(self) -> dict[str, Entry[T]]:
        self._ensure_loaded()
        return self._entries

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        entries = self._entries_loaded()
        key = name.lower() if isinstance(name, str) else name
        if key in entries:
            return entries[key]
        raise UnknownNameError(self._unknown_message(str(name)))

    def _unknown_message(self, name: str) -> str:
        names = sorted(self._entries)
        msg = f"unknown {self.kind} '{name}'; installed: {', '.join(names) or '(none)'}"
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
        if close:
            msg += f". Did you mean: {', '.join(close)}?"
        failures = self._failures()
        if failures:
            # Plugins whose entry-point name matches the wanted name come first.
            ordered = sorted(failures, key=lambda p: (p != name.lower(), p))
            notes = "; ".join(f"plugin '{p}' failed: {failures[p]}" for p in ordered)
            msg += f". It may come from a plugin that failed to load: {notes}"
        disabled = self._disabled()
        if disabled:
            msg += f". Disabled by SWIFTUNE_DISABLE_PLUGINS: {', '.join(disabled)}"
        return msg

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries_loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries_loaded()))

    def __len__(self) -> int:
        return len(self._entries_loaded())

    def names(self) -> list[str]:
        return sorted(self._entries_loaded())

    def items(self) -> list[tuple[str, T]]:
        return [(n, e.obj) for n, e in sorted(self._entries_loaded().items())]

    def entries(self) -> list[Entry[T]]:
        return [e for _, e in sorted(self._entries_loaded().items())]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
