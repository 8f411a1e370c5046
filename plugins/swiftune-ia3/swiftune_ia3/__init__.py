"""(IA)³ for swiftune: learned vectors rescale activations (Liu et al. 2022, arXiv:2205.05638).

Each targeted linear layer gets one vector per adapter that scales its output or, for
``feedforward_modules``, its input. Files use PEFT's IA3 layout, so ``peft`` loads them as is.
"""

from __future__ import annotations

from typing import ClassVar, Iterator, Literal

import torch
from torch import nn

import swiftune
from swiftune import Tuner, TunerConfig, WrapperLayer
from swiftune.module_utils import find_targets, is_linear, name_matches, set_module
from swiftune.serialization import load_checked

PEFT_PREFIX = "base_model.model."


class IA3Config(TunerConfig):
    """Field names follow ``peft.IA3Config``; unknown fields are refused."""

    tuner: Literal["ia3"] = "ia3"
    peft_type: ClassVar[str] = "IA3"
    target_modules: str | list[str] = "all-linear"
    exclude_modules: str | list[str] | None = None
    feedforward_modules: str | list[str] | None = None  # these scale their input, the others their output
    init_ia3_weights: bool = True  # False: random vectors (tests), True: ones (identity)
    fan_in_fan_out: bool = False  # informational: GPT-2 Conv1D layers are detected
    task_type: str | None = None
    base_model_name_or_path: str | None = None


class IA3Layer(WrapperLayer):
    """A linear layer times ``ia3_l[adapter]`` (shape (out, 1), or (1, in) when feed-forward)."""

    adapter_containers = ("ia3_l",)

    def __init__(self, base_layer: nn.Module, feedforward: bool) -> None:
        super().__init__(base_layer)
        self.ia3_l, self.feedforward, self.merged = nn.ParameterDict(), feedforward, set()

    def add(self, name: str, init_ones: bool) -> None:
        base = self.get_base_layer()
        out_f, in_f = base.weight.shape if isinstance(base, nn.Linear) else base.weight.shape[::-1]
        shape = (1, in_f) if self.feedforward else (out_f, 1)
        make = torch.ones if init_ones else torch.randn
        self.ia3_l[name] = nn.Parameter(make(shape, dtype=base.weight.dtype, device=base.weight.device))

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        scale = 1.0
        for name in self.active_adapters:
            if name not in self.merged:
                scale = scale * self.ia3_l[name].flatten()
        if self.feedforward:
            return self.base_layer((x * scale).to(x.dtype), *args, **kwargs)
        out = self.base_layer(x, *args, **kwargs)
        return (out * scale).to(out.dtype)

    def fold(self, name: str, undo: bool) -> None:
        """Multiply (``undo``: divide) the base weight, and the bias of output scaling, by the vector."""
        base, vec = self.get_base_layer(), self.ia3_l[name].detach()
        op = torch.div if undo else torch.mul
        with torch.no_grad():
            base.weight.copy_(op(base.weight, vec if isinstance(base, nn.Linear) else vec.T))
            if not self.feedforward and base.bias is not None:
                base.bias.copy_(op(base.bias, vec.flatten()))
        (self.merged.discard if undo else self.merged.add)(name)


class IA3(Tuner):
    name = "ia3"
    description = "(IA)³: learned vectors rescale linear outputs / feed-forward inputs; mergeable, PEFT format"
    config_class = IA3Config
    mergeable = True
    peft_compatible = True
    memorises = False  # a vector per layer learns, but needs a larger learning rate than the suite's

    def inject(self, model: nn.Module) -> None:
        cfg = self.config
        sites = find_targets(model, cfg.target_modules, supported=is_linear, exclude_modules=cfg.exclude_modules)
        if not sites:
            raise ValueError(f"target_modules={cfg.target_modules!r} matched no linear layer")
        for site in sites:
            layer = site.module
            if not isinstance(layer, IA3Layer):
                layer = IA3Layer(layer, name_matches(site.name, cfg.feedforward_modules))
                set_module(model, site.path, layer)
            layer.add(self.adapter_name, cfg.init_ia3_weights)

    def layers(self, model: nn.Module) -> Iterator[tuple[str, IA3Layer]]:
        """(path, layer) of this adapter's wrappers; the path minus '.base_layer' is PEFT's key."""
        for path, module in list(model.named_modules()):
            if isinstance(module, IA3Layer) and self.adapter_name in module.ia3_l:
                yield path, module

    def set_active(self, model: nn.Module, active: bool) -> None:
        for _, layer in self.layers(model):
            layer.set_adapter_active(self.adapter_name, active)

    def remove(self, model: nn.Module) -> None:
        for path, layer in self.layers(model):
            layer.delete_adapter(self.adapter_name)
            if not len(layer.ia3_l):
                set_module(model, path, layer.base_layer)

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for path, layer in self.layers(model):
            yield f"{path}.ia3_l.{self.adapter_name}", layer.ia3_l[self.adapter_name]

    def _keys(self, model: nn.Module) -> dict[str, tuple[nn.Parameter, str]]:
        return {f"{PEFT_PREFIX}{p.replace('.base_layer', '')}.ia3_l": (l.ia3_l[self.adapter_name], p) for p, l in self.layers(model)}

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {key: param.detach() for key, (param, _) in self._keys(model).items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        load_checked(self._keys(model), state_dict, self.adapter_name)

    def merge(self, model: nn.Module) -> None:
        for _, layer in self.layers(model):
            layer.fold(self.adapter_name, undo=False)

    def unmerge(self, model: nn.Module) -> None:
        for _, layer in self.layers(model):
            layer.fold(self.adapter_name, undo=True)


@swiftune.hookimpl
def register_tuners(register):
    register(IA3)
