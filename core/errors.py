"""Exceptions that users see. Each names what went wrong and where (field, file, plugin)."""

from __future__ import annotations


class SwiftuneError(Exception):
    """Base class of every error swiftune raises on purpose."""


class PluginError(SwiftuneError):
    """A plugin failed to import, or one of its hooks raised."""


class DuplicateNameError(SwiftuneError):
    """Two plugins registered the same name in one registry."""


class UnknownNameError(SwiftuneError, KeyError):
    """A name that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(SwiftuneError, ValueError):
    """A tuner / command configuration is invalid."""


class AdapterLoadError(SwiftuneError):
    """An adapter on disk does not fit the model, or is in a refused format."""


class NotMergeableError(SwiftuneError):
    """The tuner cannot fold its adapter into the base weights."""


class FileError(SwiftuneError, OSError):
    """A file could not be read or written; the message starts with its path."""
