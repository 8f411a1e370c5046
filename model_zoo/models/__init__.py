"""Built-in model families (``swiftune list models``); see docs/models.md.

``decoders``: causal LMs transformers implements; ``encoders``: BERT, T5, BART, ViT (tasks beyond
causal LM); ``diffusion``: Stable Diffusion, SDXL, SD3 and Flux pipelines (text-to-image); ``vision``: vision-language models (Qwen2-VL, LLaVA); ``remote``: families whose modelling code lives in their hub repositories.
"""


def register_all(register):
    """Register every built-in ``ModelFamily``."""
    from .decoders import FAMILIES as DECODERS
    from .diffusion import FAMILIES as DIFFUSION
    from .encoders import FAMILIES as ENCODERS
    from .remote import FAMILIES as REMOTE
    from .vision import FAMILIES as VISION

    for family in (*DECODERS, *ENCODERS, *VISION, *REMOTE, *DIFFUSION):
        register(family)
