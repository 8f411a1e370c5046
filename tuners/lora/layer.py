"""LoRA wrapper layers: Linear (and GPT-2 Conv1D), Embedding, Conv2d.

Each wraps its base layer and keeps one low-rank pair per adapter name. The forward pass adds
``scaling * B(A(dropout(x)))`` for every active, unmerged adapter; with none it is the base layer's
forward exactly. Key names match PEFT's (``lora_A.<name>.weight``, ``lora_embedding_A.<name>``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from swiftune.layers import WrapperLayer
from swiftune.module_utils import is_linear

from . import dora, init_variants
from .fused import is_plain_linear, lora_linear


class LoraLayer(WrapperLayer):
    """Shared bookkeeping: scaling, dropout, merge state, the cached list of adapters to run, DoRA."""

    adapter_containers = ("lora_A", "lora_B", "lora_magnitude_vector")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.scaling: dict[str, float] = {}
        self.dropout_p: dict[str, float] = {}
        self.merged_adapters: list[str] = []
        self._run: tuple[str, ...] = ()
        self.lora_magnitude_vector = nn.ParameterDict()  # DoRA adapters only (dora.py)
        self.dora_factors: dict[str, torch.Tensor] = {}  # per merged DoRA adapter: m / ||W + s B A||

    def _on_state_change(self) -> None:
        self._run = tuple(n for n in self.active_adapters if n not in self.merged_adapters)

    def add_adapter(self, name: str, r: int, scaling: float, dropout: float, init: bool | str) -> None:
        self.scaling[name] = scaling
        self.dropout_p[name] = dropout
        self._create(name, r)
        self._init_weights(name, init)
        base_weight = self.get_base_layer().weight
        dtype = base_weight.dtype if base_weight.is_floating_point() else torch.float32
        for attr in self.adapter_containers:
            container = getattr(self, attr)
            if name in container:
                container[name] = container[name].to(device=base_weight.device, dtype=dtype)

    def delete_adapter(self, name: str) -> None:
        self.scaling.pop(name, None)
        self.dropout_p.pop(name, None)
        self.dora_factors.pop(name, None)
        super().delete_adapter(name)

    def _drop(self, x: torch.Tensor, name: str) -> torch.Tensor:
        p = self.dropout_p[name]
        return F.dropout(x, p, self.training) if p > 0 and self.training else x

    # -- to implement per layer type ------------------------------------------------------------
    def _create(self, name: str, r: int) -> None:
        raise NotImplementedError

    def _init_weights(self, name: str, init: bool | str) -> None:
        if init is False:
            return
        if init not in (True, "gaussian"):
            raise ValueError(f"init_lora_weights={init!r} is implemented for Linear layers, not {self._base_kind()}")
        nn.init.zeros_(self.lora_B[name].weight)
        if init == "gaussian":
            nn.init.normal_(self.lora_A[name].weight, std=1 / self.lora_A[name].weight.shape[0])
        else:
            nn.init.kaiming_uniform_(self.lora_A[name].weight, a=math.sqrt(5))

    def delta_weight(self, name: str) -> torch.Tensor:
        """The update in the base weight's own layout and dtype."""
        raise NotImplementedError

    def dense_weight(self) -> torch.Tensor:
        """The base weight with the output axis first (a view of the parameter; dequantized for QLoRA)."""
        raise NotImplementedError

    def lora_delta(self, name: str) -> torch.Tensor:
        """``s B A`` in ``dense_weight``'s layout, in the adapter's dtype."""
        raise NotImplementedError

    def dora_terms(
        self, name: str, x: torch.Tensor, weight: torch.Tensor, base_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """DoRA's two outputs for input ``x``: ``W h`` (no bias) and ``B A h`` (unscaled), ``h`` the
        adapter's (dropped-out) input, ``weight`` the unmerged ``W``; ``base_out``: the base layer's output."""
        raise NotImplementedError

    def dora_view(self, f: torch.Tensor) -> torch.Tensor:
        """Per-output factors shaped to broadcast over the layer's output (last axis by default)."""
        return f

    def _reuses_base_output(self, h: torch.Tensor, x: torch.Tensor) -> bool:
        # The base output is W x (+ bias) exactly when the adapter sees x itself, nothing is merged
        # into W and no other wrapper sits between this one and the base layer.
        return h is x and not self.merged_adapters and self.base_layer is self.get_base_layer()

    def _base_kind(self) -> str:
        return type(self.get_base_layer()).__name__

    def adapter_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """``{key suffix (PEFT's, without the adapter name): tensor}``."""
        tensors = self.lora_tensors(name)
        if name in self.lora_magnitude_vector:
            tensors[dora.MAGNITUDE_KEY] = self.lora_magnitude_vector[name]
        return tensors

    def lora_tensors(self, name: str) -> dict[str, torch.Tensor]:
        return {"lora_A.weight": self.lora_A[name].weight, "lora_B.weight": self.lora_B[name].weight}

    # -- DoRA ----------------------------------------------------------------------------------------
    def add_dora(self, name: str) -> None:
        """Make adapter ``name`` a DoRA adapter (``use_dora``): a trained magnitude per output."""
        dora.add_magnitude(self, name)

    def unmerged_weight(self) -> torch.Tensor:
        """The base weight without the merged adapters in it (DoRA's norms are taken against it)."""
        weight = self.dense_weight()
        return dora.unmerged_weight(self, weight) if self.merged_adapters else weight

    # -- merging -------------------------------------------------------------------------------------
    def merge(self, name: str) -> None:
        if name in self.merged_adapters:
            return
        with torch.no_grad():
            if name in self.lora_magnitude_vector:
                dora.merge(self, name, self.dense_weight())
            else:
                weight = self.get_base_layer().weight
                weight.add_(self.delta_weight(name).to(weight.dtype))
        self.merged_adapters.append(name)
        self._on_state_change()

    def unmerge(self, name: str) -> None:
        if name not in self.merged_adapters:
            return
        with torch.no_grad():
            if name in self.lora_magnitude_vector:
                dora.unmerge(self, name, self.dense_weight())
            else:
                weight = self.get_base_layer().weight
                weight.sub_(self.delta_weight(name).to(weight.dtype))
        self.merged_adapters.remove(name)
        self._on_state_change()


class LoraLinear(LoraLayer):
    """LoRA over ``nn.Linear`` or GPT-2's ``Conv1D`` (weight stored transposed)."""

    def __init__(self, base_layer: nn.Module, fan_in_fan_out: bool = False) -> None:
        super().__init__(base_layer)
        base = self.get_base_layer()
        self.fan_in_fan_out = fan_in_fan_out or type(base).__name__ == "Conv1D"
        out_f, in_f = base.weight.shape
        self.in_features, self.out_features = (out_f, in_f) if self.fan_in_fan_out else (in_f, out_f)
        self.lora_A = nn.ModuleDict()
        self.lora_B = nn.ModuleDict()

    def _create(self, name: str, r: int) -> None:
        self.lora_A[name] = nn.Linear(self.in_features, r, bias=False)
        self.lora_B[name] = nn.Linear(r, self.out_features, bias=False)

    def _init_weights(self, name: str, init: bool | str) -> None:
        if isinstance(init, str) and init != "gaussian":
            init_variants.initialise(self, name, init)  # PiSSA / OLoRA: also rewrites the base weight
        else:
            super()._init_weights(name, init)

    def lora_delta(self, name: str) -> torch.Tensor:
        """``s B A`` as (out, in), in the adapter's dtype."""
        return (self.lora_B[name].weight @ self.lora_A[name].weight) * self.scaling[name]

    def delta_weight(self, name: str) -> torch.Tensor:
        delta = self.lora_delta(name)
        return delta.T if self.fan_in_fan_out else delta

    def dense_weight(self) -> torch.Tensor:
        weight = self.get_base_layer().weight
        return weight.T if self.fan_in_fan_out else weight  # (out, in)

    def dora_terms(
        self, name: str, x: torch.Tensor, weight: torch.Tensor, base_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.lora_A[name].weight, self.lora_B[name].weight
        x = x if torch.is_autocast_enabled(x.device.type) else x.to(a.dtype)
        h = self._drop(x, name)
        if self._reuses_base_output(h, x):  # no second GEMM
            bias = self.get_base_layer().bias
            plain = base_out if bias is None else base_out - bias
        else:
            plain = F.linear(h, weight.to(h.dtype))
        return plain, F.linear(F.linear(h, a), b)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        base = self.base_layer
        run = self._run
        dora_run = self.lora_magnitude_vector
        if len(run) == 1 and not args and not kwargs and run[0] not in dora_run and is_plain_linear(base):
            fused = self._fused_forward(x, run[0], base)
            if fused is not None:
                return fused
        result = base_out = base(x, *args, **kwargs)
        if not run:
            return result
        autocast = torch.is_autocast_enabled(x.device.type)
        for name in run:
            if name in dora_run:
                result = dora.forward(self, name, x, result, base_out)
                continue
            a = self.lora_A[name].weight
            b = self.lora_B[name].weight
            h = self._drop(x, name)
            if h.dtype == a.dtype == result.dtype and not autocast:
                # One GEMM for "result + scaling * (h A^T) B^T" (beta=1), no scaled temporary.
                t = h.reshape(-1, h.shape[-1]) @ a.T
                flat = torch.addmm(result.reshape(-1, result.shape[-1]), t, b.T, alpha=self.scaling[name])
                result = flat.view(result.shape)
            else:
                # Scaling the rank-r activations, not the (tokens, out) product: r/out of the work, and
                # bit-identical when the scaling is a power of two (alpha / r = 1 by default, 2 often).
                h = h if autocast else h.to(a.dtype)
                result = result + F.linear(F.linear(h, a) * self.scaling[name], b).to(result.dtype)
        return result

    def _fused_forward(self, x: torch.Tensor, name: str, base: nn.Linear) -> torch.Tensor | None:
        """Base + one LoRA pair as one autograd node (fused.py), or None where that would differ.

        The input conditions are those under which ``F.linear`` itself runs the same (add)mm, so the
        base part is the base layer's output. The op computes in the base weight's dtype: adapter
        weights of another dtype (fp32 on a bf16 base) enter it cast to that dtype, exactly as
        autocast casts them, and their gradients come back in their own dtype. Under autocast the
        fused op runs on accelerators only when the base weight already is in the autocast dtype
        (the input is cast to it, as autocast's ``linear`` does); on CPU the plain path runs: a
        fused bf16 variant (in-place rank-r bf16 GEMMs) measured slower there than autocast's own
        ``linear``.
        """
        a, b, w, bias = self.lora_A[name].weight, self.lora_B[name].weight, base.weight, base.bias
        if not (x.dim() == 2 or (x.dim() > 2 and x.is_contiguous())):
            return None
        if not (w.is_floating_point() and (bias is None or bias.dtype == w.dtype)):
            return None
        if torch.is_autocast_enabled(x.device.type):
            if x.device.type == "cpu" or w.dtype != torch.get_autocast_dtype(x.device.type):
                return None
            x = x.to(w.dtype)
        elif x.dtype != w.dtype:
            return None
        if a.dtype != w.dtype:
            a, b = a.to(w.dtype), b.to(w.dtype)
        return lora_linear(x, self._drop(x, name), w, bias, a, b, self.scaling[name])


class LoraEmbedding(LoraLayer):
    """LoRA over ``nn.Embedding``: A is (r, num_embeddings), B is (embedding_dim, r), like PEFT."""

    adapter_containers = ("lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.lora_embedding_A = nn.ParameterDict()
        self.lora_embedding_B = nn.ParameterDict()

    def _create(self, name: str, r: int) -> None:
        base = self.get_base_layer()
        self.lora_embedding_A[name] = nn.Parameter(torch.randn(r, base.num_embeddings))
        self.lora_embedding_B[name] = nn.Parameter(torch.randn(base.embedding_dim, r))

    def _init_weights(self, name: str, init: bool | str) -> None:
        if init is False:
            return
        nn.init.zeros_(self.lora_embedding_A[name])
        nn.init.normal_(self.lora_embedding_B[name])

    def lora_tensors(self, name: str) -> dict[str, torch.Tensor]:
        return {"lora_embedding_A": self.lora_embedding_A[name], "lora_embedding_B": self.lora_embedding_B[name]}

    def lora_delta(self, name: str) -> torch.Tensor:
        return (self.lora_embedding_B[name] @ self.lora_embedding_A[name]) * self.scaling[name]  # (dim, num)

    def delta_weight(self, name: str) -> torch.Tensor:
        return self.lora_delta(name).T

    def dense_weight(self) -> torch.Tensor:
        return self.get_base_layer().weight.T  # (embedding_dim, num_embeddings): one norm per dimension

    def _embed(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        base = self.get_base_layer()
        return F.embedding(
            x, table, base.padding_idx, base.max_norm, base.norm_type, base.scale_grad_by_freq, base.sparse
        )

    def _lora_out(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return self._embed(x, self.lora_embedding_A[name].T) @ self.lora_embedding_B[name].T

    def dora_terms(
        self, name: str, x: torch.Tensor, weight: torch.Tensor, base_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        plain = base_out if self._reuses_base_output(x, x) else self._embed(x, weight.T)
        return plain, self._lora_out(x, name)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = base_out = self.base_layer(x, *args, **kwargs)
        for name in self._run:
            if name in self.lora_magnitude_vector:
                result = dora.forward(self, name, x, result, base_out)
                continue
            result = result + (self._lora_out(x, name) * self.scaling[name]).to(result.dtype)
        return result


class LoraConv2d(LoraLayer):
    """LoRA over ``nn.Conv2d``: A is a conv with the base's kernel, B a 1x1 conv."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        base = self.get_base_layer()
        if base.groups != 1:
            raise ValueError("LoRA on grouped Conv2d is not supported")
        self.lora_A = nn.ModuleDict()
        self.lora_B = nn.ModuleDict()

    def _create(self, name: str, r: int) -> None:
        base = self.get_base_layer()
        self.lora_A[name] = nn.Conv2d(
            base.in_channels, r, base.kernel_size, base.stride, base.padding, dilation=base.dilation, bias=False
        )
        self.lora_B[name] = nn.Conv2d(r, base.out_channels, (1, 1), (1, 1), bias=False)

    def delta_weight(self, name: str) -> torch.Tensor:
        a, b = self.lora_A[name].weight, self.lora_B[name].weight
        if a.shape[2:] == (1, 1):
            delta = (b.squeeze(3).squeeze(2) @ a.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3)
        else:
            delta = F.conv2d(a.permute(1, 0, 2, 3), b).permute(1, 0, 2, 3)
        return delta * self.scaling[name]

    def lora_delta(self, name: str) -> torch.Tensor:
        return self.delta_weight(name)

    def dense_weight(self) -> torch.Tensor:
        return self.get_base_layer().weight  # (out, in, kh, kw)

    def dora_view(self, f: torch.Tensor) -> torch.Tensor:
        return f.view(-1, 1, 1)  # over (out channels, height, width)

    def dora_terms(
        self, name: str, x: torch.Tensor, weight: torch.Tensor, base_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.lora_A[name]
        x = x.to(a.weight.dtype)
        h = self._drop(x, name)
        base = self.get_base_layer()
        if self._reuses_base_output(h, x):
            plain = base_out if base.bias is None else base_out - base.bias.view(-1, 1, 1)
        else:
            plain = F.conv2d(h, weight.to(h.dtype), None, base.stride, base.padding, base.dilation, base.groups)
        return plain, self.lora_B[name](a(h))

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = base_out = self.base_layer(x, *args, **kwargs)
        for name in self._run:
            if name in self.lora_magnitude_vector:
                result = dora.forward(self, name, x, result, base_out)
                continue
            h = self._drop(x, name).to(self.lora_A[name].weight.dtype)
            result = result + (self.lora_B[name](self.lora_A[name](h)) * self.scaling[name]).to(result.dtype)
        return result


def supported(module: nn.Module) -> bool:
    return is_linear(module) or isinstance(module, (nn.Embedding, nn.Conv2d))


def wrap(module: nn.Module, fan_in_fan_out: bool = False) -> LoraLayer:
    """The LoRA wrapper for ``module`` (which may itself be another tuner's wrapper)."""
    base = module.get_base_layer() if isinstance(module, WrapperLayer) else module
    if isinstance(base, nn.Embedding):
        return LoraEmbedding(module)
    if isinstance(base, nn.Conv2d):
        return LoraConv2d(module)
    return LoraLinear(module, fan_in_fan_out)
