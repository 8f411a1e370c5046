"""Declared under the entry-point name 'lora', which swiftune itself uses: must not be loaded."""

raise AssertionError("swt_clash must never be imported")
