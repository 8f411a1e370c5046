"""``load_datasets``: dataset arguments -> mixed, sampled, shuffled train / validation examples.

A name resolves, in order, to: a ``ms::`` / ``hf::`` hub id, an existing local file or folder,
a registered dataset (``swiftune list datasets``), a Hugging Face id (``owner/name``).

A ``val_ratio`` split is made on distinct examples before ``#N`` repeats any: identical examples
always land on the same side, so no evaluation example is a copy of a training one (splitting
after oversampling made every eval example of ``data.jsonl#1000`` on 40 rows a training row).
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from .convert import SourceStats, convert_rows
from .errors import DataError, OfflineError
from .hub import load_hub, offline_message
from .readers import FILE_SUFFIXES, RawRows, read_local
from .spec import DatasetSpec, parse_spec

log = logging.getLogger("swiftune.data")

Example = dict[str, Any]


@dataclass
class LoadStats:
    """What ``load_datasets`` did, source by source; pass one in to read it afterwards."""

    sources: list[SourceStats] = field(default_factory=list)
    train: int = 0
    val: int = 0
    kind: str = ""

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sources)

    def summary(self) -> str:
        parts = [f"{s.origin} [{s.adapter}]: {s.kept}/{s.rows} rows" for s in self.sources]
        text = f"{self.train} train / {self.val} validation {self.kind} examples from " + "; ".join(parts)
        if self.skipped:
            text += f"; skipped {self.skipped} bad row(s), first: {self.bad_rows()[0]}"
        return text

    def bad_rows(self) -> list[str]:
        """The kept messages of skipped rows ("file line N: why"), all sources."""
        return [b for s in self.sources for b in s.bad]


def _looks_local(name: str) -> bool:
    if name.startswith((".", "/", "~")) or name.lower().endswith(FILE_SUFFIXES):
        return True
    return os.sep in name and not _looks_like_hub_id(name)


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts)


def _entry_sources(entry: Any, split: str | None, skip_bad_rows: bool) -> list[RawRows]:
    """The raw rows of a registered dataset: its local file, or its hub copies (ModelScope first)."""
    if entry.path is not None:
        return [read_local(entry.local_path(), split, skip_bad_rows=skip_bad_rows)]
    hubs = [(hub, ident) for hub, ident in (("ms", entry.ms_id), ("hf", entry.hf_id)) if ident]
    reasons: list[str] = []
    for hub, ident in hubs:
        try:
            return [load_hub(hub, ident, subset, split or entry.split) for subset in (entry.subsets or (None,))]
        except OfflineError as exc:
            reasons += [f"{hub}::{ident}: {r}" for r in exc.reasons]
    raise OfflineError(offline_message(f"'{entry.name}'", reasons), reasons)


def resolve(spec: DatasetSpec, *, skip_bad_rows: bool = False) -> tuple[list[RawRows], str | None, dict[str, str]]:
    """The raw sources of one spec, plus the adapter and column renames a registered entry names."""
    from .. import registries

    name = spec.name
    if spec.hub is not None:
        return [load_hub(spec.hub, name, None, spec.split or "train")], None, {}
    path = os.path.expanduser(name)
    if os.path.exists(path):
        return [read_local(path, spec.split, skip_bad_rows=skip_bad_rows)], None, {}
    if name.lower() in registries.datasets:
        entry = registries.datasets.get(name)
        return _entry_sources(entry, spec.split, skip_bad_rows), entry.adapter, dict(entry.columns)
    if _looks_local(name):
        raise DataError(f"dataset file or folder '{name}' does not exist")
    if _looks_like_hub_id(name):
        return [load_hub("hf", name, None, spec.split or "train")], None, {}
    try:
        registries.datasets.get(name)
    except Exception as exc:  # noqa: BLE001 - reuse the registry's "did you mean" message
        raise DataError(f"dataset '{spec}': no such file or folder, and {exc}") from None
    raise AssertionError("unreachable")


def sample(examples: list[Example], n: int, rng: random.Random) -> list[Example]:
    """N examples: a random subset, or whole copies plus a random remainder when N exceeds the size."""
    if not examples:
        return []
    copies, rest = divmod(n, len(examples))
    return examples * copies + rng.sample(examples, rest)


def load_dataset(
    spec: str | DatasetSpec,
    *,
    seed: int = 42,
    adapter: str | None = None,
    skip_bad_rows: bool = False,
    stats: LoadStats | None = None,
) -> tuple[list[Example], str]:
    """Load one ``name_or_path[:split][#N]``; returns (canonical examples, their kind)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    examples, kind = _load_rows(spec, adapter=adapter, skip_bad_rows=skip_bad_rows, stats=stats)
    if spec.n is not None:
        examples = sample(examples, spec.n, _spec_rng(seed, spec))
    return examples, kind


def _spec_rng(seed: int, spec: DatasetSpec) -> random.Random:
    return random.Random(f"{seed}:{spec}")


def _load_rows(
    spec: DatasetSpec, *, adapter: str | None, skip_bad_rows: bool, stats: LoadStats | None
) -> tuple[list[Example], str]:
    """Every example of one spec, before ``#N`` sampling."""
    sources, entry_adapter, columns = resolve(spec, skip_bad_rows=skip_bad_rows)
    examples: list[Example] = []
    kind = ""
    for raw in sources:
        converted, source_stats, produces = convert_rows(
            raw, adapter or entry_adapter, columns=columns, skip_bad_rows=skip_bad_rows
        )
        if stats is not None:
            stats.sources.append(source_stats)
        if source_stats.skipped:
            log.warning("%s: skipped %d bad row(s); first: %s", raw.origin, source_stats.skipped, source_stats.bad[0])
        examples += converted
        kind = produces
    if not examples:
        raise DataError(f"dataset '{spec}' gave no examples (rows read: {sum(len(r) for r in sources)})")
    return examples, kind


def _key(example: Example) -> str:
    return json.dumps(example, sort_keys=True, default=str)


def split_distinct(
    parts: list[list[Example]], val_ratio: float, rng: random.Random
) -> tuple[list[list[Example]], list[Example], list[int]]:
    """Hold out ``val_ratio`` of the examples of ``parts`` (one list per dataset), whole groups of
    identical examples at a time; returns (each part's training examples, the held-out ones, how
    many were held out of each part)."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for p, examples in enumerate(parts):
        for i, example in enumerate(examples):
            groups.setdefault(_key(example), []).append((p, i))
    total = sum(len(e) for e in parts)
    n_val = max(1, round(total * val_ratio))
    keys = list(groups)
    rng.shuffle(keys)
    held: set[tuple[int, int]] = set()
    for k in keys:
        if len(held) >= n_val:
            break
        if not held or len(held) + len(groups[k]) <= n_val:
            held.update(groups[k])
    train = [[e for i, e in enumerate(examples) if (p, i) not in held] for p, examples in enumerate(parts)]
    if not any(train):
        raise DataError(
            f"val_ratio {val_ratio} leaves nothing to train on: the data has {len(groups)} distinct example(s), "
            "and evaluation examples are never copies of training ones; add data or lower val_ratio"
        )
    val = [parts[p][i] for p, i in sorted(held)]
    return train, val, [sum(1 for q, _ in held if q == p) for p in range(len(parts))]


def load_datasets(
    specs: Sequence[str],
    *,
    seed: int = 42,
    val_ratio: float = 0.0,
    skip_bad_rows: bool = False,
    val_specs: Sequence[str] = (),
    adapter: str | None = None,
    stats: LoadStats | None = None,
) -> tuple[list[Example], list[Example]]:
    """Load, mix and split datasets; returns ``(train_examples, val_examples)``.

    Each spec is ``[ms::|hf::]name_or_path[:split][#N]``. All examples are shuffled with ``seed``;
    ``val_specs`` give the validation set, otherwise ``val_ratio`` of the mix is held out.
    ``adapter`` forces one adapter for every source. All sources must give the same kind of
    example (chat messages, text or classification). Raises ``DataError`` on an empty result.
    """
    if not specs:
        raise DataError("no dataset given")
    if not 0.0 <= val_ratio < 1.0:
        raise DataError(f"val_ratio must be in [0, 1), got {val_ratio}")
    stats = stats if stats is not None else LoadStats()
    rng = random.Random(seed)

    def load_all(names: Sequence[str], hold_out: float = 0.0) -> tuple[list[Example], list[Example]]:
        """All examples of ``names`` (``#N`` applied), shuffled; ``hold_out`` of the distinct ones apart."""
        parts: list[list[Example]] = []
        wanted: list[int] = []
        for text in names:
            spec = parse_spec(text)
            examples, kind = _load_rows(spec, adapter=adapter, skip_bad_rows=skip_bad_rows, stats=stats)
            if stats.kind and kind != stats.kind:
                raise DataError(f"dataset '{text}' gives {kind} examples but earlier ones give {stats.kind}; they cannot be mixed")
            stats.kind = kind
            wanted.append(len(examples) if spec.n is None else spec.n)
            if spec.n is not None and spec.n <= len(examples):  # a subset: no copies yet
                examples = sample(examples, spec.n, _spec_rng(seed, spec))
            parts.append(examples)
        held: list[Example] = []
        held_per_part = [0] * len(parts)
        if hold_out > 0:
            parts, held, held_per_part = split_distinct(parts, hold_out, rng)
        out: list[Example] = []
        for text, examples, n, n_held in zip(names, parts, wanted, held_per_part):
            if n - n_held > len(examples) and examples:  # '#N' above the data's size: copies, of training rows only
                examples = sample(examples, n - n_held, _spec_rng(seed, parse_spec(text)))
            out += examples
        rng.shuffle(out)
        rng.shuffle(held)
        return out, held

    if val_specs:
        train, _ = load_all(specs)
        val, _ = load_all(val_specs)
    else:
        train, val = load_all(specs, hold_out=val_ratio)
    stats.train, stats.val = len(train), len(val)
    log.info("%s", stats.summary())
    return train, val

