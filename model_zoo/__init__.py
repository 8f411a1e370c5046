"""The built-in model zoo plugin: model families, chat templates, dataset adapters, datasets and
GRPO reward functions.

Registered through the `swiftune` entry point (``model_zoo = "swiftune.model_zoo"``) exactly like
a third-party plugin. Each hook defers to the subpackage that owns that registry.
"""

import swiftune


@swiftune.hookimpl
def register_models(register):
    from .models import register_all

    register_all(register)


@swiftune.hookimpl
def register_templates(register):
    from .templates import register_all

    register_all(register)


@swiftune.hookimpl
def register_datasets(register):
    from .datasets import register_all

    register_all(register)


@swiftune.hookimpl
def register_rewards(register):
    from .rewards import register_all

    register_all(register)
