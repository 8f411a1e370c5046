"""swiftune.testing: the conformance suite (filled below)."""
