"""The bypass ladder: one small residual step per tapped block, a zero projection out.

With ``x_i`` the detached output of tapped block ``i`` (normalised, no parameters) and ``s`` the
bypass stream (width ``bypass_dim``)::

    s_0 = act(down_0(x_0))
    s_i = s_{i-1} + act(down_i(x_i) + mix_i(s_{i-1}))
    bypass = up(layer_norm(s_last))            # up is zero at init: the model starts unchanged

The steps run inside forward hooks on the blocks, as the backbone produces each ``x_i``; the head
wrapper takes ``bypass`` when the backbone is done. Every step is per position, so with a KV cache
(where the blocks see only the new tokens) the bypass of those tokens is the same as without it.
Nothing flows back into the backbone: its outputs are detached before the ladder reads them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "tanh": torch.tanh}


class Rung(nn.Module):
    """One ladder step: reads a block's output (``down``) and the stream so far (``mix``; not the first)."""

    def __init__(self, features: int, dim: int, first: bool) -> None:
        super().__init__()
        self.down = nn.Linear(features, dim)
        self.mix = None if first else nn.Linear(dim, dim, bias=False)


class Ladder(nn.Module):
    """The bypass network of one adapter; ``tap`` is the forward hook of tapped block ``step``."""

    def __init__(self, features: Sequence[int], dim: int, out_features: int, act: str, dropout: float) -> None:
        super().__init__()
        self.rungs = nn.ModuleList(Rung(f, dim, first=i == 0) for i, f in enumerate(features))
        self.up = nn.Linear(dim, out_features)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.act = act
        self.dropout_p = dropout
        self.enabled = False
        self._stream: torch.Tensor | None = None
        self._last = -1
        #: The model's logits_to_keep in this pass: 0 (all positions), the last `keep` positions, or a
        #: 1-D tensor of the positions the head sees.
        self.keep: int | torch.Tensor = 0

    def reset(self) -> None:
        self._stream, self._last = None, -1

    def begin(self, module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        """Forward pre-hook on the whole model: a new pass starts; note which positions the head gets."""
        if not self.enabled:
            return
        self.reset()
        keep = kwargs.get("logits_to_keep", 0)
        if isinstance(keep, torch.Tensor) and keep.dim() == 0:
            keep = int(keep)
        self.keep = keep if isinstance(keep, torch.Tensor) else int(keep or 0)

    def tap(self, step: int, module: nn.Module, args: Any, output: Any) -> None:
        """Forward hook: advance the stream with the detached output of tapped block ``step``."""
        if not self.enabled:
            return
        if step <= self._last:  # a new forward pass begins
            self.reset()
        x = output[0] if isinstance(output, tuple) else output
        rung = self.rungs[step]
        h = F.layer_norm(x.detach().to(rung.down.weight.dtype), (x.shape[-1],))
        if self.dropout_p > 0 and self.training:
            h = F.dropout(h, self.dropout_p, True)
        z = rung.down(h)
        if self._stream is not None and rung.mix is not None:
            z = z + rung.mix(self._stream)
        update = ACTIVATIONS[self.act](z)
        self._stream = update if self._stream is None else self._stream + update
        self._last = step

    def bypass(self) -> torch.Tensor | None:
        """The bypass of the pass that just ran (consumed: the next pass starts afresh)."""
        stream = self._stream
        self.reset()
        if stream is None:
            return None
        return self.up(F.layer_norm(stream, (stream.shape[-1],)))
