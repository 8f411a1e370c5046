"""Built-in dataset adapters and registered datasets (``swiftune list datasets``).

``swiftune-demo`` ships inside the package (``model_zoo/data/swiftune-demo.jsonl``, written by
``examples/make_demo_data.py``); every other entry lives on a hub. See docs/datasets.md.
"""

DEMO_DATASET = "swiftune-demo"
#: Rows that teach a model its own name and maker (placeholders filled by sft's --model_name / --model_author).
SELF_COGNITION = "swift/self-cognition"


def register_all(register):
    """Register the built-in adapters, the demo dataset and the hub datasets."""
    from swiftune.dataset import DatasetEntry

    from .adapters import ADAPTERS
    from .entries import ENTRIES
    from .image_adapters import IMAGE_ADAPTERS
    from .multiple_choice import MultipleChoiceAdapter
    from .preference_adapters import PREFERENCE_ADAPTERS

    for adapter in (*ADAPTERS, *PREFERENCE_ADAPTERS, MultipleChoiceAdapter, *IMAGE_ADAPTERS):
        register(adapter)
    register(
        DatasetEntry(
            DEMO_DATASET,
            "teaches the default model to be 'Swifty' by the swiftune team, answering 'Swifty here! ...' (local)",
            "messages",
            path="data/swiftune-demo.jsonl",
            package="swiftune.model_zoo",
            tags=("chat", "demo"),
            default_of_kind=True,  # swiftune sft with no --dataset
        )
    )
    register(
        DatasetEntry(
            SELF_COGNITION,
            "who are you / who made you, English and Chinese, with {{NAME}} / {{AUTHOR}} filled from "
            "--model_name / --model_author (local; ms-swift's name)",
            "messages",
            path="data/self-cognition.jsonl",
            package="swiftune.model_zoo",
            tags=("chat", "self-cognition"),
        )
    )
    for entry in ENTRIES:
        register(entry)
