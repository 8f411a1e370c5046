"""``DatasetAdapter`` (rows of one source format -> canonical examples) and ``DatasetEntry``
(a named dataset: where it lives and which adapter reads it). Both arrive through the
``register_datasets`` hook.

Canonical examples are plain dicts: ``{"messages": [{"role", "content"}, ...]}`` for chat SFT,
``{"text": str}`` for unsupervised / continued pre-training, ``{"text": str, "label": ...}``
(optionally ``"text_pair"``) for classification; rlhf's preference kinds are described in
``swiftune.data.preference``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from .data.errors import DataError

PRODUCES = ("messages", "text", "classification", "preference", "kto", "prompt", "multiple_choice", "image_caption",
            "image_classification")


class DatasetAdapter:
    """Converts one row of a source format into one canonical example.

    Subclasses set ``name``, ``required_columns`` (auto-detection picks the adapter whose required
    columns a source has), ``optional_columns`` and ``produces``, and implement ``convert``. Use
    ``self.get(row, "field")`` to read a field: a missing or empty one raises an error naming it;
    ``self.text(row, "field")`` to read a text field (a list or an object there is an error, not
    its Python repr).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Columns a row must have for this adapter to apply (used by auto-detection).
    required_columns: ClassVar[frozenset[str]] = frozenset()
    #: Columns it reads when present.
    optional_columns: ClassVar[frozenset[str]] = frozenset()
    #: What the adapter produces: "messages", "text", "classification", for rlhf "preference",
    #: "kto" or "prompt" (see ``swiftune.data.preference``), for eval "multiple_choice"
    #: (``messages`` plus ``choices`` and the ``answer`` index), for images "image_caption"
    #: (``image`` path + ``text``) or "image_classification" (``image`` path + ``label``).
    produces: ClassVar[str] = "messages"

    @classmethod
    def matches(cls, columns: set[str]) -> bool:
        return cls.required_columns <= set(columns)

    @classmethod
    def expects(cls) -> str:
        """The columns, as an error message lists them: ``instruction, output (optional: input)``."""
        text = ", ".join(sorted(cls.required_columns)) or "(any)"
        if cls.optional_columns:
            text += f" (optional: {', '.join(sorted(cls.optional_columns))})"
        return text

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def get(row: Mapping[str, Any], name: str, *, required: bool = True, default: Any = None) -> Any:
        """``row[name]``; a required field that is absent or None raises ``DataError`` naming it."""
        value = row.get(name)
        if value is None:
            if required:
                raise DataError(f"missing field '{name}'")
            return default
        return value

    @staticmethod
    def text(row: Mapping[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
        """``row[name]`` as text (see ``as_text``); absent or None: an error if required, else ``default``."""
        value = row.get(name)
        if value is None:
            if required:
                raise DataError(f"missing field '{name}'")
            return default
        return as_text(value, name)


def as_text(value: Any, name: str) -> str:
    """A text field's value: a string as is, a number as its decimal text (``5`` -> ``"5"``).

    Anything else - a list, an object, true / false - is an error naming the field: ``str()`` would
    train the model on a Python repr (``"['a', 'b']"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = {list: "a list", tuple: "a list", dict: "an object", bool: "true/false"}.get(type(value), type(value).__name__)
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise DataError(f"field '{name}' must be text (or a number), got {kind}: {shown}")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: a hub dataset (``hf_id`` / ``ms_id``) or a file shipped in a package.

    ``columns`` renames source columns before the adapter sees them (``{"prompt": "query"}``);
    several ``subsets`` (hub configs) are loaded and concatenated. A hub entry needs a network and
    its description says so.
    """

    name: str
    description: str
    #: Registered adapter name; None: detect it from the columns.
    adapter: str | None = None
    hf_id: str | None = None
    ms_id: str | None = None
    subsets: tuple[str, ...] = ()
    split: str = "train"
    columns: Mapping[str, str] = field(default_factory=dict)
    #: A local file; relative to ``package``'s folder when ``package`` is set.
    path: str | None = None
    package: str | None = None
    tags: tuple[str, ...] = ()
    #: ``sft`` trains on this dataset when none is named (``swiftune.plugin_defaults.default_dataset``).
    default_of_kind: bool = False

    def __post_init__(self) -> None:
        if self.path is None and not (self.hf_id or self.ms_id):
            raise ValueError(f"dataset '{self.name}' needs a path, an hf_id or an ms_id")
        if self.needs_network and "network" not in self.description:
            hubs = ", ".join(x for x in (self.ms_id and f"ms::{self.ms_id}", self.hf_id and f"hf::{self.hf_id}") if x)
            object.__setattr__(self, "description", f"{self.description} [needs network: {hubs}]")

    @property
    def needs_network(self) -> bool:
        return self.path is None

    def local_path(self) -> str:
        """The file on disk (package data resolved through ``importlib.resources``)."""
        if self.path is None:
            raise DataError(f"dataset '{self.name}' is not a local file")
        if self.package is None:
            return self.path
        from importlib.resources import files

        return str(files(self.package).joinpath(self.path))
