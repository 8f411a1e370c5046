"""The one exception type of the data path: it always says which file / dataset, row and field."""

from __future__ import annotations

from ..errors import SwiftuneError


class DataError(SwiftuneError, ValueError):
    """A dataset cannot be found, read, converted or tokenized as asked."""


class OfflineError(DataError):
    """A hub dataset was asked for and the hub cannot be reached; ``reasons`` says why, per hub."""

    def __init__(self, message: str, reasons: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)
