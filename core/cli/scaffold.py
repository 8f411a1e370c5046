'''``swiftune plugin new NAME``: write a working tuner plugin package to start from.

The package passes its own tests as generated (``pip install ./swiftune-NAME && pytest
swiftune-NAME/tests``): a small low-rank tuner, its entry point, and swiftune's conformance suite.
The tuner module is the complete example of docs/plugins.md (a test keeps the two identical).
Templates are plain strings here (no package data), filled with ``string.Template``.
'''

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from .. import __version__
from ..errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)*$")

TUNER = Template('''"""${name}: rank-r updates ``up(down(x))`` of linear layers, a swiftune tuner plugin (made by
`swiftune plugin new ${name}`). ``up`` starts at zero, so a new adapter changes nothing at first."""

from typing import Iterator, Literal

import torch
from torch import nn

import swiftune
from swiftune import Tuner, TunerConfig, WrapperLayer
from swiftune.module_utils import find_targets, is_linear, set_module
from swiftune.serialization import load_checked


class ${Class}Config(TunerConfig):
    tuner: Literal["${name}"] = "${name}"
    r: int = 4  # rank of the update
    target_modules: str | list[str] = "all-linear"  # "all-linear", a regex, or names / suffixes


class ${Class}Layer(WrapperLayer):
    """One linear layer (nn.Linear or GPT-2's Conv1D) plus one (down, up) pair per adapter."""
    adapter_containers = ("down", "up")  # per-adapter containers, keyed by adapter name

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.down, self.up, self.merged = nn.ModuleDict(), nn.ModuleDict(), set()

    def add(self, name: str, r: int) -> None:
        weight = self.get_base_layer().weight
        out_f, in_f = weight.shape if isinstance(self.get_base_layer(), nn.Linear) else weight.shape[::-1]
        self.down[name], self.up[name] = nn.Linear(in_f, r, bias=False).to(weight), nn.Linear(r, out_f, bias=False).to(weight)
        nn.init.zeros_(self.up[name].weight)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.base_layer(x, *args, **kwargs)  # adapters may be fp32 on a bf16 model: each computes in its dtype
        return out + sum(self.up[n](self.down[n](x.to(self.up[n].weight.dtype))).to(out.dtype) for n in self.active_adapters if n not in self.merged)

    def fold(self, name: str, sign: int) -> None:
        base, delta = self.get_base_layer(), self.up[name].weight @ self.down[name].weight  # (out, in)
        with torch.no_grad():  # GPT-2's Conv1D stores its weight as (in, out)
            base.weight.add_(sign * (delta if isinstance(base, nn.Linear) else delta.T))
        (self.merged.add if sign > 0 else self.merged.discard)(name)


class ${Class}(Tuner):
    name = "${name}"
    description = "rank-r update of linear layers (a plugin template); mergeable"
    config_class = ${Class}Config
    mergeable = True

    def inject(self, model: nn.Module) -> None:
        sites = find_targets(model, self.config.target_modules, supported=is_linear)
        if not sites:
            raise ValueError(f"target_modules={self.config.target_modules!r} matched no linear layer")
        for site in sites:  # a second adapter reuses the wrapper
            layer = site.module if isinstance(site.module, ${Class}Layer) else ${Class}Layer(site.module)
            set_module(model, site.path, layer)
            layer.add(self.adapter_name, self.config.r)

    def layers(self, model: nn.Module) -> Iterator[tuple[str, ${Class}Layer]]:
        for path, module in list(model.named_modules()):
            if isinstance(module, ${Class}Layer) and self.adapter_name in module.down:
                yield path, module

    def set_active(self, model: nn.Module, active: bool) -> None:
        for _, layer in self.layers(model):
            layer.set_adapter_active(self.adapter_name, active)

    def remove(self, model: nn.Module) -> None:
        for path, layer in self.layers(model):
            layer.delete_adapter(self.adapter_name)
            if not len(layer.down):
                set_module(model, path, layer.base_layer)

    def _tensors(self, model: nn.Module) -> dict[str, tuple[nn.Parameter, str]]:  # key -> (param, module)
        return {f"{path}.{part}.weight": (getattr(layer, part)[self.adapter_name].weight, path)
                for path, layer in self.layers(model) for part in ("down", "up")}

    def named_trainable_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        return ((key, param) for key, (param, _) in self._tensors(model).items())

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {key: param.detach() for key, (param, _) in self._tensors(model).items()}

    def load_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        load_checked(self._tensors(model), state_dict, self.adapter_name)  # strict: names keys and shapes

    def merge(self, model: nn.Module, sign: int = +1) -> None:
        for _, layer in self.layers(model):
            layer.fold(self.adapter_name, sign)

    def unmerge(self, model: nn.Module) -> None:
        self.merge(model, -1)


@swiftune.hookimpl
def register_tuners(register):
    register(${Class})
''')

PYPROJECT = Template('''[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "swiftune-${name}"
version = "0.1.0"
description = "${name}: a tuner plugin for swiftune"
readme = "README.md"
requires-python = ">=3.10"
# swiftune's plugin API is stable within a minor version: pin the one you tested against.
dependencies = ["swiftune>=${minor},<${next_minor}"]

[project.optional-dependencies]
test = ["pytest>=8.0"]

# swiftune discovers tuners through this entry-point group; the name is the plugin's name.
[project.entry-points.swiftune]
${name} = "${module}"

[tool.setuptools]
packages = ["${module}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
''')

TESTS = Template('''"""Tests of the ${name} plugin: swiftune's shared conformance suite, then your own."""

import torch

from swiftune import Swift, registries
from swiftune.testing import conformance_tests, model_case

# Every check (identity, training, disable, save / load, merge, memorise, generate, two adapters)
# on tiny llama, qwen2, gpt2, bert, MLP and conv models; the tuner's flags decide what applies.
test_${module}_conformance = conformance_tests("${name}")


def test_registered_through_the_entry_point():
    assert registries.tuners.entry("${name}").plugin == "${name}"


def test_adapter_has_rank_r_matrices():
    model = Swift.prepare(model_case("mlp").build(), {"tuner": "${name}", "r": 2})
    shapes = {k: tuple(v.shape) for k, v in model.adapter_state_dict("default").items()}
    assert shapes["fc1.down.weight"] == (2, 16) and shapes["fc1.up.weight"] == (32, 2)
    assert all(torch.count_nonzero(v) == 0 for k, v in model.adapter_state_dict("default").items() if ".up." in k)
''')

README = Template('''# swiftune-${name}

A tuner plugin for [swiftune](https://pypi.org/project/swiftune/), generated by
`swiftune plugin new ${name}`.

```bash
pip install -e ".[test]"      # registers the entry point: `swiftune list tuners` now shows ${name}
pytest                         # swiftune's conformance suite and this plugin's own tests
swiftune sft --tuner ${name} --r 8 --model <model> --dataset <data>
```

The tuner lives in `${module}/__init__.py`; its config fields are the CLI's tuner flags.
See swiftune's docs/plugins.md for the hooks, the capability flags and publishing.
''')


def module_name(name: str) -> str:
    return "swiftune_" + name.replace("-", "_")


def class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)


def render(name: str) -> dict[str, str]:
    """Relative path -> text of every file of the plugin package for tuner ``name``."""
    if not _NAME.match(name):
        raise ConfigError(
            f"plugin name {name!r}: use lowercase letters, digits, '_' and '-', starting with a letter "
            "(it becomes the tuner's registered name and, with '_' for '-', a Python module)"
        )
    major, minor = (int(x) for x in __version__.split(".")[:2])
    values = {"name": name, "module": module_name(name), "Class": class_name(name),
              "minor": f"{major}.{minor}", "next_minor": f"{major}.{minor + 1}"}
    module = values["module"]
    return {
        "pyproject.toml": PYPROJECT.substitute(values),
        "README.md": README.substitute(values),
        f"{module}/__init__.py": TUNER.substitute(values),
        f"tests/test_{module}.py": TESTS.substitute(values),
    }


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write ``<directory>/swiftune-<name>/``; refuses to overwrite an existing folder."""
    files = render(name)
    root = Path(directory) / f"swiftune-{name}"
    if root.exists():
        raise ConfigError(f"{root} already exists; remove it or choose another --dir")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
