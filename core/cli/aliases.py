"""ms-swift's argument names: they live in ``swiftune.recipes.aliases`` (the Python calls read them
without importing the CLI); ``from swiftune.cli import aliases`` keeps working through this name."""

from __future__ import annotations

from ..recipes.aliases import *  # noqa: F401,F403 - its public names (ALIASES, normalize, ...)
