"""The ``DatasetAdapter`` interface: rows of one source format -> canonical examples.

Canonical examples are plain dicts: ``{"messages": [{"role", "content"}, ...]}`` for chat SFT,
``{"text": str}`` for unsupervised / continued pre-training, ``{"text": str, "label": ...}`` for
classification. Adapters are registered through the ``register_datasets`` hook.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping


class DatasetAdapter:
    """Converts one row of a source format into one canonical example."""

    name: ClassVar[str]
    #: Columns a row must have for this adapter to apply (used by auto-detection).
    required_columns: ClassVar[frozenset[str]] = frozenset()
    #: What the adapter produces: "messages", "text" or "classification".
    produces: ClassVar[str] = "messages"

    @classmethod
    def matches(cls, columns: set[str]) -> bool:
        return cls.required_columns <= set(columns)

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError
