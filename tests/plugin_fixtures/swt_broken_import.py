"""A plugin whose import fails (a missing dependency)."""

import swiftune_fixture_missing_dependency  # noqa: F401
