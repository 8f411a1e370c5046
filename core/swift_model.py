"""``SwiftModel``: a base model plus named adapters of any registered tuners.

It is an ``nn.Module`` whose ``forward`` and ``generate`` call the base model (after letting
prompt-learning tuners rewrite the inputs), so it works with ``generate``, the transformers
``Trainer`` and accelerate. Attributes it does not have are looked up on the base model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from . import registries
from .adapter_dtype import ADAPTER_DTYPES, AdapterDtype, base_float_dtype, cast_parameters, resolve_adapter_dtype
from .config import TunerConfig
from .config_dispatch import config_from_disk, parse_config
from .errors import ConfigError, NotMergeableError, SwiftuneError
from .peft_quiet import without_implied_tuner
from .rollback import rollback_on_error
from .serialization import adapter_dir, check_adapter_name, write_adapter_config
from .tuner import Tuner


@dataclass(frozen=True)
class ParameterSummary:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


class SwiftModel(nn.Module):
    """Wraps ``model``; adapters are injected into it in place."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.tuners: dict[str, Tuner] = {}
        self._active: list[str] = []
        self._merged: list[str] = []
        self._disabled = False
        #: Adapters whose parameters stay frozen whatever is active (loaded with is_trainable=False).
        self._frozen: set[str] = set()
        for p in model.parameters():
            p.requires_grad_(False)

    # -- attribute fall-through (config, device, generation_config, ...) -------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)

    # -- adapters -----------------------------------------------------------------------------------
    @property
    def active_adapters(self) -> list[str]:
        return list(self._active)

    @property
    def configs(self) -> dict[str, TunerConfig]:
        return {name: t.config for name, t in self.tuners.items()}

    def add_adapter(
        self, adapter_name: str, config: Any, *, active: bool = True, adapter_dtype: AdapterDtype | torch.dtype = "auto",
        trainable: bool = True,
    ) -> Tuner:
        """Inject a new adapter. It becomes active (alongside the others) unless ``active=False``.

        Transactional: if anything fails, the model is left exactly as it was (modules, parameters,
        dtypes, ``requires_grad``), including what the tuner's ``prepare_model`` did (e.g. quantizing).
        ``trainable=False``: the adapter's parameters stay frozen whenever it is active.

        ``adapter_dtype``: dtype of the parameters the adapter adds; ``auto`` is fp32 on a bf16 /
        fp16 base, else the base's dtype (see ``swiftune.adapter_dtype``).
        """
        with rollback_on_error(self):
            return self._add_adapter(
                adapter_name, config, active=active, loading=False, adapter_dtype=adapter_dtype, trainable=trainable
            )

    def _add_adapter(
        self, adapter_name: str, config: Any, *, active: bool, loading: bool, adapter_dtype: AdapterDtype | torch.dtype = "auto",
        trainable: bool = True,
    ) -> Tuner:
        """The steps of ``add_adapter``; callers roll the model back when it raises."""
        check_adapter_name(adapter_name)
        if not isinstance(adapter_dtype, torch.dtype) and adapter_dtype not in ADAPTER_DTYPES:
            raise ConfigError(f"adapter_dtype must be one of {', '.join(ADAPTER_DTYPES)}; got {adapter_dtype!r}")
        if adapter_name in self.tuners:
            raise ConfigError(f"adapter '{adapter_name}' already exists; delete it first or pick another name")
        cfg = parse_config(config)
        tuner_cls: type[Tuner] = registries.tuners.get(cfg.tuner)
        tuner = tuner_cls(adapter_name, cfg)  # the instance's flags: they may depend on the config
        self._check_compatible(tuner, adapter_name)
        if active:
            self._check_prompt_learning([*self._active, adapter_name], {adapter_name: tuner})
        tuner.loading = loading
        self.model = tuner.prepare_model(self.model)
        # (after prepare_model: bitsandbytes layers compute differently in eval, QLoRA's tests rely on that)
        old_modules = list(self.model.modules())  # kept alive while ids are compared
        modules_before = {id(m) for m in old_modules}
        base_params = list(self.model.parameters())  # kept alive while ids are compared
        before = {id(p) for p in base_params}
        dtype = resolve_adapter_dtype(adapter_dtype, base_float_dtype(self.model))
        try:
            tuner.inject(self.model)
        except BaseException as exc:
            _release(tuner, self.model)
            if isinstance(exc, (ValueError, TypeError)):
                raise ConfigError(f"{cfg.tuner} (adapter '{adapter_name}'): {exc}") from exc
            raise
        tuner.loading = False
        _follow_training_mode(self.model, modules_before)
        cast_parameters(_added_parameters(tuner, self.model, before), dtype)
        self.tuners[adapter_name] = tuner
        if not trainable:
            self._frozen.add(adapter_name)
        tuner.set_active(self.model, False)
        if active:
            self.set_active_adapters(self._active + [adapter_name])
        return tuner

    def _check_compatible(self, tuner: Tuner, adapter_name: str) -> None:
        if tuner.needs_transformers_model and not hasattr(self.model, "config"):
            raise ConfigError(f"tuner '{tuner.name}' needs a transformers model; got {type(self.model).__name__}")
        if self._merged:
            raise ConfigError(f"unmerge adapters {self._merged} before adding adapter '{adapter_name}'")

    def delete_adapter(self, adapter_name: str) -> None:
        tuner = self._tuner(adapter_name)
        if adapter_name in self._merged:
            tuner.unmerge(self.model)
            self._merged.remove(adapter_name)
        tuner.remove(self.model)
        del self.tuners[adapter_name]
        self._frozen.discard(adapter_name)
        self.set_active_adapters([n for n in self._active if n != adapter_name])

    def set_active_adapters(self, names: str | Sequence[str]) -> None:
        """Make exactly ``names`` active (their effects add up); the others stay loaded but off."""
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            self._tuner(n)
        self._check_prompt_learning(names)
        self._active = list(dict.fromkeys(names))
        self._apply_activity()

    def adapter_is_trainable(self, adapter_name: str) -> bool:
        """False for an adapter loaded with ``is_trainable=False`` (or added with ``trainable=False``)."""
        self._tuner(adapter_name)
        return adapter_name not in self._frozen

    def set_adapter_trainable(self, adapter_name: str, trainable: bool) -> None:
        """Whether the adapter's parameters train while it is active; activation changes keep it."""
        self._tuner(adapter_name)
        (self._frozen.discard if trainable else self._frozen.add)(adapter_name)
        self._apply_activity()

    def _apply_activity(self) -> None:
        for name, tuner in self.tuners.items():
            tuner.set_active(self.model, name in self._active and not self._disabled)
        trainable = {
            id(p)
            for n in self._active
            if n not in self._frozen
            for _, p in self.tuners[n].named_trainable_parameters(self.model)
        }
        for p in self.model.parameters():
            p.requires_grad_(id(p) in trainable)

    @contextlib.contextmanager
    def disable_adapters(self) -> Iterator[None]:
        """Run the plain base model inside the block. Merged adapters are part of the base weights,
        so this raises ``NotMergeableError`` while any is merged: unmerge them first."""
        if self._merged:
            raise NotMergeableError(f"adapters {self._merged} are merged; unmerge them before disabling")
        previous = self._disabled
        self._disabled = True
        self._apply_activity()
        try:
            yield
        finally:
            self._disabled = previous
            self._apply_activity()

    def _check_prompt_learning(self, names: Sequence[str], extra: Mapping[str, Tuner | type[Tuner]] | None = None) -> None:
        """At most one prompt-learning adapter may be active: each rewrites the input sequence
        (virtual tokens, KV prefixes) on the assumption that it is the only one doing so."""
        kinds: dict[str, Tuner | type[Tuner]] = {**self.tuners, **(extra or {})}  # instances: a bridge may decide per config
        prompt = [n for n in dict.fromkeys(names) if kinds[n].prompt_learning]
        if len(prompt) > 1:
            shown = ", ".join(f"'{n}' ({kinds[n].name})" for n in prompt)
            raise ConfigError(
                f"adapters {shown} are prompt-learning adapters; only one of them can be active at a time "
                "(combine one with any number of other adapters, e.g. LoRA)"
            )

    def _tuner(self, name: str) -> Tuner:
        if name not in self.tuners:
            raise ConfigError(f"no adapter named '{name}'; adapters: {', '.join(self.tuners) or '(none)'}")
        return self.tuners[name]

    # -- forward ------------------------------------------------------------------------------------
    def _transform(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self._disabled:
            for name in self._active:
                kwargs = self.tuners[name].transform_inputs(self.model, kwargs)
        return kwargs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **self._transform(kwargs))

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.generate(*args, **self._transform(kwargs))

    def get_base_model(self) -> nn.Module:
        return self.model

    # -- merging ------------------------------------------------------------------------------------
    def _mergeable_active(self) -> list[str]:
        bad = [n for n in self._active if not self.tuners[n].mergeable]
        if bad:
            kinds = ", ".join(f"'{n}' ({self.tuners[n].name})" for n in bad)
            raise NotMergeableError(f"adapters {kinds} cannot be merged: their tuner is not mergeable")
        return list(self._active)

    def merge_adapter(self) -> None:
        """Fold the active adapters into the base weights (exactly undone by ``unmerge_adapter``)."""
        for name in self._mergeable_active():
            if name not in self._merged:
                self.tuners[name].merge(self.model)
                self._merged.append(name)

    def unmerge_adapter(self) -> None:
        for name in reversed(self._merged):
            self.tuners[name].unmerge(self.model)
        self._merged = []

    def merge_and_unload(self) -> nn.Module:
        """Merge the active adapters, remove every adapter and return the plain base model."""
        self._mergeable_active()
        inactive = [n for n in self.tuners if n not in self._active]
        self.merge_adapter()
        for name in list(self.tuners):
            self.tuners.pop(name).remove(self.model)
        self._active, self._merged = [], []
        if inactive:
            import warnings

            warnings.warn(f"inactive adapters {inactive} were dropped by merge_and_unload", stacklevel=2)
        return self.model

    def unload(self) -> nn.Module:
        """Remove every adapter without merging and return the plain base model."""
        self.unmerge_adapter()
        for name in list(self.tuners):
            self.tuners.pop(name).remove(self.model)
        self._active = []
        return self.model

    # -- parameters ---------------------------------------------------------------------------------
    def trainable_summary(self) -> ParameterSummary:
        seen: set[int] = set()
        total = trainable = 0
        for p in self.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return ParameterSummary(trainable, total)

    def print_trainable_parameters(self) -> None:
        print(self.trainable_summary())

    def adapter_state_dict(self, adapter_name: str) -> dict[str, torch.Tensor]:
        return self._tuner(adapter_name).state_dict(self.model)

    # -- saving / loading ---------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, adapter_names: Sequence[str] | None = None) -> None:
        """One folder per adapter in PEFT's layout ('default' at ``path``, others in subfolders)."""
        if self._merged:
            raise SwiftuneError(f"adapters {self._merged} are merged into the weights; unmerge before saving")
        base_id = _name_or_path(self.model)
        for name in adapter_names or list(self.tuners):
            tuner = self._tuner(name)
            config = tuner.config.to_disk_dict()
            # PEFT's field, written for every tuner: loaders find the base through it. A config
            # field holding None (PEFT-style configs declare it) is filled too.
            if config.get("base_model_name_or_path") is None and base_id is not None:
                config["base_model_name_or_path"] = base_id
            folder = adapter_dir(path, name)
            folder.mkdir(parents=True, exist_ok=True)
            tuner.write_weights(self.model, folder)
            write_adapter_config(folder, without_implied_tuner(config))  # PEFT warns about keys it lacks

    def load_adapter(
        self, path: str | Path, adapter_name: str = "default", *, active: bool = True,
        adapter_dtype: AdapterDtype | torch.dtype = "auto", is_trainable: bool = True,
    ) -> Tuner:
        """Add an adapter from a folder written by swiftune or PEFT (its tensors are converted to
        ``adapter_dtype``, as in ``add_adapter``, whatever dtype the file holds).

        ``is_trainable=False`` keeps the adapter frozen (see ``set_adapter_trainable``). A failed
        load leaves the model exactly as it was, as a failed ``add_adapter`` does.
        """
        from .serialization import read_adapter_config

        config = config_from_disk(read_adapter_config(path), source=str(path))
        with rollback_on_error(self):
            tuner = self._add_adapter(
                adapter_name, config, active=active, loading=True, adapter_dtype=adapter_dtype, trainable=is_trainable
            )
            try:
                tuner.load_state_dict(self.model, tuner.read_weights(Path(path)))
            except BaseException:
                _release(tuner, self.model)
                raise
        return tuner

    def __repr__(self) -> str:
        adapters = ", ".join(f"{n}: {t.name}" for n, t in self.tuners.items())
        return f"SwiftModel(adapters={{{adapters}}}, active={self._active})\n{self.model!r}"


def _added_parameters(tuner: Tuner, model: nn.Module, before: set[int]) -> list[nn.Parameter]:
    """The trainable parameters ``tuner`` added to ``model`` (not in ``before``), less the copies of
    base modules (``modules_to_save``), which keep the base's dtype as in PEFT."""
    from .modules_to_save import TrainableCopy

    copies = {id(p) for m in model.modules() if isinstance(m, TrainableCopy) for p in m.modules_to_save.parameters()}
    return [p for _, p in tuner.named_trainable_parameters(model) if id(p) not in before and id(p) not in copies]


def _release(tuner: Tuner, model: nn.Module) -> None:
    """``remove`` a failed adapter, for what its tuner keeps outside the model (the rollback
    snapshot restores the model itself afterwards, so errors of a half-done adapter are ignored)."""
    with contextlib.suppress(Exception):
        tuner.remove(model)


def _follow_training_mode(model: nn.Module, old: set[int]) -> None:
    """Modules the tuner created (new ones start in training mode) take their parent's mode, so an
    adapter added to a model in ``eval()`` runs no dropout until the model is put in training."""
    for module in model.modules():
        for child in module.children():
            if id(child) not in old and child.training != module.training:
                child.training = module.training


def _name_or_path(model: nn.Module) -> str | None:
    cfg = getattr(model, "config", None)
    value = getattr(cfg, "_name_or_path", None) or getattr(model, "name_or_path", None)
    return value or None
