"""``--compile``: ``torch.compile`` each transformer block in place (regional compilation).

The blocks of a model are one class repeated, so one compiled graph serves them all: compiling
block by block costs about one block's compile time (tens of seconds on a CPU) instead of the
whole model's (minutes). ``nn.Module.compile`` compiles in place, so parameter names, adapter
saving and the Trainer's unwrapping do not change. Training runs without a KV cache then (a cache
that fills layer by layer would make every block recompile).
"""

from __future__ import annotations

from torch import nn

from ..structure import find_blocks


def compile_blocks(model: nn.Module) -> int:
    """Compile every block of ``model``'s main block list in place; returns how many (0: none found)."""
    blocks = find_blocks(model)
    for site in blocks:
        site.base.compile()
    return len(blocks)
