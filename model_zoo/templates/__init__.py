"""Built-in chat templates (``swiftune list templates``); see docs/templates.md."""


def register_all(register):
    """Register every built-in ``ChatTemplate``."""
    from .builtin import TEMPLATES
    from .vision import TEMPLATES as VISION

    for template in (*TEMPLATES, *VISION):
        register(template)
