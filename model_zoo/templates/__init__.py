"""Built-in templates (see docs)."""


def register_all(register):
    """Register every built-in entry of this kind."""
