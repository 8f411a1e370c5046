"""Local sources -> raw rows: jsonl, json, csv, parquet files and ``save_to_disk`` folders.

Every row keeps where it came from (file and line or row number), so a later error can say
"data.jsonl line 7: missing field 'output'". A malformed jsonl line is an error naming the file
and line, or, with ``skip_bad_rows``, a skipped row that is counted.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import DataError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class RawRows:
    """Rows of one source, before any adapter. ``rows`` is a list or a ``datasets.Dataset``."""

    origin: str
    rows: Sequence[Mapping[str, Any]]
    #: What a position is called in messages: "line" (jsonl, csv) or "row".
    unit: str = "row"
    #: The line / row number of each row when it is not its index + 1.
    numbers: list[int] | None = None
    #: Rows that could not even be read (skipped with ``skip_bad_rows``): "line 7: ...".
    bad: list[str] = field(default_factory=list)

    def where(self, index: int) -> str:
        number = self.numbers[index] if self.numbers is not None else index + 1
        return f"{self.origin} {self.unit} {number}"

    def columns(self) -> set[str]:
        """Column names: a Dataset's, or the union of the keys of the rows."""
        names = getattr(self.rows, "column_names", None)
        if names is not None:
            return set(names)
        found: set[str] = set()
        for row in self.rows:
            found.update(row)
        return found

    def __len__(self) -> int:
        return len(self.rows)


def read_local(
    path: str | Path, split: str | None = None, *, skip_bad_rows: bool = False, subset: str | None = None
) -> RawRows:
    """Read a file or folder; ``split`` picks a split of a saved ``DatasetDict`` or ``<split>.*``
    file; ``subset`` a subfolder of a folder (a hub snapshot's config)."""
    p = Path(path)
    if p.is_dir():
        return _read_dir(p, split, skip_bad_rows, subset)
    if not p.is_file():
        raise DataError(f"dataset file '{p}' does not exist")
    if split not in (None, "train"):
        raise DataError(f"dataset file '{p}' has a single split 'train'; got ':{split}'")
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(p, skip_bad_rows)
    if suffix == ".json":
        return _read_json(p)
    if suffix == ".csv":
        return _read_csv(p)
    if suffix == ".parquet":
        return _read_parquet(p)
    raise DataError(f"dataset file '{p}': unsupported format '{suffix}'; use {', '.join(FILE_SUFFIXES)}")


def _read_jsonl(p: Path, skip_bad_rows: bool) -> RawRows:
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    bad: list[str] = []
    try:
        with p.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                except ValueError as exc:
                    message = f"{p} line {number}: invalid JSON ({exc})"
                    if not skip_bad_rows:
                        raise DataError(message + "; fix it or pass skip_bad_rows / --skip-bad-rows") from None
                    bad.append(message)
                    continue
                rows.append(row)
                numbers.append(number)
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text ({exc})") from None
    return RawRows(str(p), rows, unit="line", numbers=numbers, bad=bad)


def _read_json(p: Path) -> RawRows:
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p} line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text ({exc})") from None
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{p}: expected a list of objects (or an object holding one list), found keys {', '.join(data)}")
        data = data[lists[0]]
    if not isinstance(data, list):
        raise DataError(f"{p}: expected a list of objects, got {type(data).__name__}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{p} row {i + 1}: expected an object, got {type(row).__name__}")
    return RawRows(str(p), data)


def _read_csv(p: Path) -> RawRows:
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    with p.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            if not reader.fieldnames:
                raise DataError(f"{p}: empty CSV file (no header row)")
            for row in reader:
                extra = row.pop(None, None)  # type: ignore[call-overload]
                if extra:
                    raise DataError(f"{p} line {reader.line_num}: {len(extra)} more value(s) than header columns")
                rows.append(row)
                numbers.append(reader.line_num)
        except UnicodeDecodeError as exc:
            raise DataError(f"{p}: not UTF-8 text ({exc.reason}; near line {reader.line_num + 1})") from None
        except csv.Error as exc:
            raise DataError(f"{p} line {reader.line_num + 1}: malformed CSV ({exc})") from None
    return RawRows(str(p), rows, unit="line", numbers=numbers)


def _read_parquet(p: Path) -> RawRows:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DataError(f"{p}: cannot read parquet ({type(exc).__name__}: {exc})") from None
    return RawRows(str(p), table.to_pylist())


def _read_dir(p: Path, split: str | None, skip_bad_rows: bool, subset: str | None = None) -> RawRows:
    """A ``save_to_disk`` folder (Dataset or DatasetDict), a folder with a ``<split>.<ext>`` file,
    or any folder of data files (a hub snapshot): ``datasets`` infers its splits from file names."""
    if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
        import datasets

        loaded = datasets.load_from_disk(str(p))
        if isinstance(loaded, datasets.DatasetDict):
            name = split or "train"
            if name not in loaded:
                raise DataError(f"dataset '{p}' has splits {', '.join(loaded)}; no split '{name}' (use {p}:<split>)")
            return RawRows(f"{p}:{name}", loaded[name])
        if split not in (None, "train"):
            raise DataError(f"dataset '{p}' is a single Dataset without splits; got ':{split}'")
        return RawRows(str(p), loaded)
    name = split or "train"
    if subset is not None and (p / subset).is_dir():
        p, subset = p / subset, None
    for suffix in FILE_SUFFIXES:
        candidate = p / f"{name}{suffix}"
        if candidate.is_file():
            return read_local(candidate, skip_bad_rows=skip_bad_rows)
    return read_data_folder(p, name)


def read_data_folder(p: Path, split: str) -> RawRows:
    """One split of a folder of data files, through ``datasets.load_dataset(folder)``."""
    import datasets

    try:
        ds = datasets.load_dataset(str(p), split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for a folder it cannot read
        found = sorted(str(x.relative_to(p)) for x in p.rglob("*") if x.is_file() and not x.name.startswith("."))
        raise DataError(
            f"cannot read split '{split}' of folder '{p}' ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"expected a datasets.save_to_disk folder or {'/'.join(FILE_SUFFIXES)} data files; "
            f"it holds: {', '.join(found[:10]) or 'nothing'}"
        ) from None
    return RawRows(f"{p}:{split}", ds)
