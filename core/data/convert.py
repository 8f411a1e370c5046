"""Raw rows -> canonical examples through a ``DatasetAdapter``, chosen by name or from the columns.

Every failure names the row ("data.jsonl line 7: missing field 'output'") and what the adapter
expects; with ``skip_bad_rows`` bad rows are dropped and counted instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import DataError
from .multimodal import with_images
from .preference import KINDS as PREFERENCE_KINDS
from .preference import check_preference_example
from .readers import RawRows

ROLES = ("system", "user", "assistant", "tool")
#: How many skipped-row messages a report keeps (the count is always exact).
KEEP_BAD = 5


@dataclass
class SourceStats:
    """What loading one source did: rows read, examples kept, bad rows skipped."""

    origin: str
    adapter: str
    rows: int = 0
    kept: int = 0
    skipped: int = 0
    #: The first few skipped rows, each "file line N: why".
    bad: list[str] = field(default_factory=list)

    def add_bad(self, message: str) -> None:
        self.skipped += 1
        if len(self.bad) < KEEP_BAD:
            self.bad.append(message)


def _adapters() -> list[tuple[str, type]]:
    from .. import registries

    return registries.dataset_adapters.items()


def describe_adapters() -> str:
    """``alpaca: instruction, output (optional: input); ...`` for error messages."""
    return "; ".join(f"{name}: {cls.expects()}" for name, cls in _adapters())


def detect_adapter(columns: set[str], origin: str) -> str:
    """The one registered adapter whose required columns ``columns`` has (the most specific wins:
    text + label is classification, not text). Otherwise an error listing columns and adapters."""
    fits = [(name, cls) for name, cls in _adapters() if cls.required_columns and cls.matches(columns)]
    fits = [(n, c) for n, c in fits if not any(c.required_columns < o.required_columns for _, o in fits)]
    found = ", ".join(sorted(columns)) or "none"
    if len(fits) == 1:
        return fits[0][0]
    if not fits:
        raise DataError(
            f"cannot tell the format of {origin}: columns found: {found}. "
            f"Adapters expect: {describe_adapters()}. Rename the columns or pick an adapter"
        )
    names = ", ".join(n for n, _ in fits)
    raise DataError(
        f"{origin} fits several formats ({names}); columns found: {found}. "
        f"Adapters expect: {describe_adapters()}. Pick one with adapter=<name>"
    )


def get_adapter(name: str) -> Any:
    """A fresh instance of the registered adapter ``name`` (errors list the installed ones)."""
    from .. import registries

    return registries.dataset_adapters.get(name)()


def check_example(example: Any, produces: str) -> None:
    """Raise ``DataError`` (naming the field) when ``example`` is not a canonical example of its kind."""
    if not isinstance(example, Mapping):
        raise DataError(f"adapter returned {type(example).__name__}, not a dict")
    if produces == "messages":
        messages = example.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DataError("field 'messages' must be a non-empty list")
        for i, msg in enumerate(messages):
            if not isinstance(msg, Mapping):
                raise DataError(f"messages[{i}] must be an object")
            if msg.get("role") not in ROLES:
                raise DataError(f"messages[{i}].role is {msg.get('role')!r}; expected one of {', '.join(ROLES)}")
            if not isinstance(msg.get("content"), str):
                raise DataError(f"messages[{i}].content must be text, got {type(msg.get('content')).__name__}")
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError("no assistant turn to train on")
    elif produces in ("text", "classification"):
        if not isinstance(example.get("text"), str):
            raise DataError("field 'text' must be text")
        if produces == "classification" and example.get("label") is None:
            raise DataError("missing field 'label'")
    elif produces in PREFERENCE_KINDS:
        check_preference_example(example, produces)
    elif produces == "multiple_choice":
        choices, answer = example.get("choices"), example.get("answer")
        if not isinstance(choices, list) or len(choices) < 2 or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise DataError("a multiple-choice example needs 'choices' (two or more) and 'answer' (an index into them)")
    elif produces in ("image_caption", "image_classification"):
        if not isinstance(example.get("image"), str) or not example["image"]:
            raise DataError("field 'image' must be a path to an image file")
        if produces == "image_caption" and not isinstance(example.get("text"), str):
            raise DataError("field 'text' (the caption) must be text")
        if produces == "image_classification" and example.get("label") is None:
            raise DataError("missing field 'label'")
    else:
        raise DataError(f"unknown example kind {produces!r}; expected messages, text, classification, "
                        f"{', '.join(PREFERENCE_KINDS)}, multiple_choice, image_caption, image_classification")


def convert_rows(
    raw: RawRows,
    adapter: str | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    skip_bad_rows: bool = False,
) -> tuple[list[dict[str, Any]], SourceStats, str]:
    """Convert every row of ``raw``; returns (examples, stats, what the adapter produces).

    ``columns`` renames source columns first. ``adapter=None`` detects it from the columns.
    """
    if len(raw) == 0:
        skipped = f" (all {len(raw.bad)} were unreadable and skipped; first: {raw.bad[0]})" if raw.bad else ""
        raise DataError(f"dataset {raw.origin} has no rows{skipped}")
    rename = dict(columns or {})
    cols = raw.columns()
    cols = {rename.get(c, c) for c in cols}
    name = adapter or detect_adapter(cols, raw.origin)
    impl = get_adapter(name)
    stats = SourceStats(raw.origin, name, rows=len(raw) + len(raw.bad))
    for message in raw.bad:
        stats.add_bad(message)
    examples: list[dict[str, Any]] = []
    for i, row in enumerate(raw.rows):
        try:
            if rename:
                row = {rename.get(k, k): v for k, v in row.items()}
            example = impl.convert(row)
            check_example(example, impl.produces)
            example = with_images(row, example, impl.produces, raw.origin)  # paths checked, relative to the file
        except (DataError, KeyError, TypeError, ValueError) as exc:
            detail = f"missing field {exc}" if type(exc) is KeyError else str(exc)
            message = f"{raw.where(i)}: {detail} (adapter '{name}' expects {impl.expects()})"
            if not skip_bad_rows:
                raise DataError(message + "; fix the row or pass skip_bad_rows / --skip-bad-rows") from None
            stats.add_bad(message)
            continue
        examples.append(dict(example))
    stats.kept = len(examples)
    return examples, stats, impl.produces
