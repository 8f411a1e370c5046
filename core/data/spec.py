"""``name_or_path[:split][#N]``: how one dataset is named on the command line and in the API.

``ms::`` and ``hf::`` prefixes force ModelScope / the Hugging Face Hub. ``#N`` takes N rows
(sampled, repeating the data when N exceeds its size). A local path that exists as written is
never split at a ``:``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import DataError

_SPLIT = re.compile(r"^[A-Za-z0-9_.\-]+$")
PREFIXES = {"ms::": "ms", "hf::": "hf"}


@dataclass(frozen=True)
class DatasetSpec:
    """One parsed dataset argument."""

    name: str
    split: str | None = None
    n: int | None = None
    #: "ms" or "hf" when the name had that prefix; None lets the loader decide.
    hub: str | None = None
    raw: str = ""

    def __str__(self) -> str:
        return self.raw or self.name


def parse_spec(text: str) -> DatasetSpec:
    """Parse ``[ms::|hf::]name_or_path[:split][#N]``; errors quote the argument."""
    raw = text
    s = text.strip()
    if not s:
        raise DataError("empty dataset name; expected name_or_path[:split][#N]")
    hub = None
    for prefix, which in PREFIXES.items():
        if s.lower().startswith(prefix):
            hub, s = which, s[len(prefix):]
            break
    n = None
    if "#" in s and not os.path.exists(s):
        s, _, count = s.rpartition("#")
        if not count.isdigit() or int(count) <= 0:
            raise DataError(f"dataset '{raw}': '#{count}' must be a positive number of rows (name_or_path[:split][#N])")
        n = int(count)
    split = None
    head, sep, tail = s.rpartition(":")
    is_drive = len(head) == 1 and head.isalpha() and tail.startswith(("\\", "/"))
    if sep and head and _SPLIT.match(tail) and not is_drive and not os.path.exists(s):
        s, split = head, tail
    if not s:
        raise DataError(f"dataset '{raw}' has no name before ':{split}'")
    return DatasetSpec(name=s, split=split, n=n, hub=hub, raw=raw)
