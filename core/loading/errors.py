"""Errors of the model loaders; each names the model, the file or the package involved."""

from __future__ import annotations

from ..errors import SwiftuneError


class ModelLoadError(SwiftuneError):
    """A model or its tokenizer cannot be loaded from what was named."""


class OfflineError(ModelLoadError):
    """The model must come from a hub, this machine cannot reach it and no local copy exists."""


class MissingPackageError(ModelLoadError):
    """A packaged model's Python package is not installed."""
