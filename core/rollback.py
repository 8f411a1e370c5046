"""Undo a failed change of a model: ``with rollback_on_error(model): ...``.

Adding an adapter changes the model in several steps (``prepare_model`` may quantize every
linear layer and upcast norms, ``inject`` swaps modules and registers hooks, activation flips
``requires_grad``). When a later step fails, the earlier ones must not stay: the snapshot taken
before puts back, for every module that existed, its attributes (children, parameters, buffers,
hooks, plain fields) and, for every tensor, its data, dtype, device and ``requires_grad``.

The snapshot holds references, not copies: it costs no memory for the weights. What it cannot
undo is arithmetic done in place on an existing tensor (``weight.add_(...)``); no built-in tuner
does that before it can fail, and such a change is reported in the error (``rollback_incomplete``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

_CONTAINERS = (dict, list, set)
#: Non-module objects that hang off a model and that preparation may change (transformers' configs).
_OWNED_OBJECTS = ("config", "generation_config")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, set):
        return set(value)
    return None


def _refill(container: Any, contents: Any) -> None:
    """Put ``contents`` back into ``container`` in place (other objects may hold the container)."""
    container.clear()
    if isinstance(container, list):
        container.extend(contents)
    else:  # dict or set
        container.update(contents)


class _ObjectState:
    """One object's ``__dict__``: each value, and for dicts / lists / sets their contents."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.values = dict(vars(obj))
        self.contents = {k: _copy(v) for k, v in self.values.items() if isinstance(v, _CONTAINERS)}

    def restore(self) -> None:
        state = vars(self.obj)
        for key in [k for k in state if k not in self.values]:
            del state[key]
        for key, value in self.values.items():
            if key in self.contents:
                _refill(value, self.contents[key])
            state[key] = value


class _TensorState:
    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor
        self.data = tensor.data  # an alias of the storage: no copy
        self.requires_grad = tensor.requires_grad
        self.version = tensor._version

    def restore(self) -> None:
        t = self.tensor
        same = (t.dtype, t.device, t.shape, t.data.data_ptr()) == (
            self.data.dtype, self.data.device, self.data.shape, self.data.data_ptr()
        )
        if not same:
            t.data = self.data
        if t.requires_grad != self.requires_grad and (t.is_floating_point() or t.is_complex() or not self.requires_grad):
            t.requires_grad_(self.requires_grad)

    def changed_in_place(self) -> bool:
        return self.tensor._version != self.version and self.tensor.data.data_ptr() == self.data.data_ptr()


class ModelSnapshot:
    """The state of ``modules`` (and everything under them) that ``restore`` puts back."""

    def __init__(self, *modules: nn.Module) -> None:
        seen: set[int] = set()
        self.objects: list[_ObjectState] = []
        self.tensors: list[_TensorState] = []
        names: dict[int, str] = {}
        for root in modules:
            for name, module in root.named_modules(remove_duplicate=False):
                if id(module) in seen:
                    continue
                seen.add(id(module))
                self.objects.append(_ObjectState(module))
                for attr in _OWNED_OBJECTS:
                    owned = module.__dict__.get(attr)
                    plain = owned is not None and not isinstance(owned, nn.Module) and hasattr(owned, "__dict__")
                    if plain and id(owned) not in seen:
                        seen.add(id(owned))
                        self.objects.append(_ObjectState(owned))
                for kind in ("_parameters", "_buffers"):
                    for key, tensor in module.__dict__[kind].items():
                        if tensor is not None and id(tensor) not in seen:
                            seen.add(id(tensor))
                            names[id(tensor)] = f"{name}.{key}" if name else key
                            self.tensors.append(_TensorState(tensor))
        self._names = names

    def restore(self) -> list[str]:
        """Put everything back; returns the names of tensors changed in place, which it could not undo."""
        for state in self.objects:
            state.restore()
        for tensor in self.tensors:
            tensor.restore()
        return [self._names[id(t.tensor)] for t in self.tensors if t.changed_in_place()]


@contextlib.contextmanager
def rollback_on_error(*modules: nn.Module) -> Iterator[ModelSnapshot]:
    """Run the block; if it raises, restore ``modules`` as they were before it and re-raise."""
    snapshot = ModelSnapshot(*modules)
    try:
        yield snapshot
    except BaseException as exc:
        changed = snapshot.restore()
        if changed:
            note = f"rollback incomplete: tensors changed in place could not be restored: {', '.join(changed[:5])}"
            if hasattr(exc, "add_note"):
                exc.add_note(note)
        raise
