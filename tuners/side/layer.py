"""``SideLayer``: a block whose output is blended with side networks that read the block's input.

For each active adapter, with gate ``g = sigmoid(alpha)`` and side network ``s``::

    out = g * main + (1 - g) * side,   side = main + s(x)     i.e.   out = main + (1 - g) * s(x)

``x`` is the block's input (its hidden states), ``main`` the block's output. The side branch is the
main output corrected by the side network; as ``s`` ends in a zero projection, a fresh adapter
returns ``main`` exactly for any ``alpha`` (a gate alone could reach exactly ``main`` only at
``alpha = +inf``, where nothing would train). Blocks returning tuples are blended on the first element.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from swiftune.layers import WrapperLayer

from .network import SideContext, SideMLP, SideTransformer


class SideLayer(WrapperLayer):
    """Wraps one block of hidden width ``hidden``."""

    adapter_containers = ("side", "side_alpha")

    def __init__(self, base_layer: nn.Module, hidden: int) -> None:
        super().__init__(base_layer)
        self.hidden = hidden
        self.side = nn.ModuleDict()
        self.side_alpha = nn.ParameterDict()
        self.dropout_p: dict[str, float] = {}
        self.cache_layer_idx = _layer_idx(self.get_base_layer())

    def add_adapter(
        self, name: str, side_type: str, width: int, heads: int, act: str, dropout: float, alpha: float, causal: bool
    ) -> None:
        if side_type == "transformer":
            net: nn.Module = SideTransformer(self.hidden, width, heads, act, causal)
        else:
            net = SideMLP(self.hidden, width, act)
        gate = nn.Parameter(torch.tensor(float(alpha)))
        ref = next(self.get_base_layer().parameters(), None)
        if ref is not None and ref.is_floating_point():
            net = net.to(ref.device, ref.dtype)
            gate = nn.Parameter(gate.detach().to(ref.device, ref.dtype))
        self.side[name] = net.train(self.training)
        self.side_alpha[name] = gate
        self.dropout_p[name] = dropout

    def delete_adapter(self, name: str) -> None:
        self.dropout_p.pop(name, None)
        super().delete_adapter(name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.active_adapters:
            return self.base_layer(*args, **kwargs)
        x = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(x, torch.Tensor):
            raise TypeError("side: the wrapped block was called without hidden states as its first argument")
        context = _context(args, kwargs, x.shape[-2], self.cache_layer_idx)
        out = self.base_layer(*args, **kwargs)
        main = out[0] if isinstance(out, tuple) else out
        y = main
        for name in self.active_adapters:
            net = self.side[name]
            s = net(x.to(self.side_alpha[name].dtype), context)
            p = self.dropout_p[name]
            if p > 0 and self.training:
                s = F.dropout(s, p, True)
            y = y + ((1 - torch.sigmoid(self.side_alpha[name])) * s).to(main.dtype)
        return (y, *out[1:]) if isinstance(out, tuple) else y


def _layer_idx(block: nn.Module) -> int | None:
    """The cache layer index of the block's attention (transformers sets ``layer_idx`` on it)."""
    for module in block.modules():
        idx = getattr(module, "layer_idx", None)
        if isinstance(idx, int):
            return idx
    return None


def _is_cache(value: Any) -> bool:
    cache_utils = sys.modules.get("transformers.cache_utils")
    return cache_utils is not None and isinstance(value, cache_utils.Cache)


def _context(args: tuple, kwargs: dict, length: int, layer_idx: int | None) -> SideContext:
    """Find the cache and the attention mask among the block's arguments (names differ by family)."""
    values = list(args[1:]) + list(kwargs.values())
    cache = next((v for v in values if _is_cache(v)), None)
    mask = kwargs.get("attention_mask")
    if not isinstance(mask, torch.Tensor):
        mask = next((v for v in args[1:] if isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[-2] == length), None)
    return SideContext(cache, mask, layer_idx)
