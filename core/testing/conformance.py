"""The conformance checks every tuner must pass, driven by its capability flags.

Each check is a plain function ``check_x(config, case)``: ``config`` is a tuner config (a dict
with a ``tuner`` key or a ``TunerConfig``), ``case`` a ``ModelCase``. A check raises
``AssertionError`` (with numbers in the message) when the tuner misbehaves, ``NotApplicable`` when
the tuner's flags say the check does not apply to it or to this model. No pytest here: the checks
run from any harness; ``swiftune.testing.params`` turns them into pytest parameters.

Adapters are made non-trivial by training them a few steps (AdamW), never by poking their weights,
so the checks need nothing beyond the public API.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .. import registries
from ..api import Swift
from ..config import TunerConfig
from ..config_dispatch import parse_config
from ..errors import ConfigError, NotMergeableError
from ..layers import WrapperLayer
from ..swift_model import SwiftModel
from ..tuner import Tuner
from .models import ModelCase

Config = Mapping[str, Any] | TunerConfig

LR = 1e-2
WARMUP_STEPS = 5  # steps that make an adapter non-trivial before comparing
MEMORISE_STEPS = 30
EXACT = 1e-6  # "identical" for paths that may reorder float additions
MERGE_ATOL, MERGE_RTOL = 1e-4, 1e-4


class NotApplicable(Exception):
    """The check does not apply to this tuner / model combination (the reason is the message)."""


# -- helpers (public: plugin authors may reuse them in their own tests) --------------------------------------
def tuner_class(config: Config) -> type[Tuner]:
    return registries.tuners.get(parse_config(config).tuner)


def tuner_instance(config: Config, adapter_name: str = "default") -> Tuner:
    """An (uninjected) tuner for ``config``: its flags, which a bridge tuner may set per config."""
    cfg = parse_config(config)
    return tuner_class(cfg)(adapter_name, cfg)


def train_steps(model: nn.Module, case: ModelCase, steps: int, *, seed: int = 1, lr: float = LR) -> list[float]:
    """``steps`` AdamW steps on one fixed batch; returns the loss before each step and the final loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    assert params, "no parameter requires grad after preparing the adapter"
    opt = torch.optim.AdamW(params, lr=lr)
    batch = case.batch(seed)
    losses = []
    for _ in range(steps):
        loss = case.loss(model, batch)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(case.loss(model, batch).item())
    return losses


def logits_of(model: nn.Module, case: ModelCase, seed: int = 0) -> torch.Tensor:
    with torch.no_grad():
        return case.logits(model, case.batch(seed).inputs).detach().clone()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float = 0.0, rtol: float = 0.0) -> None:
    """Equal within ``atol + rtol * |expected|`` (exactly equal with the defaults)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.float() - expected.float()).abs()
    bound = atol + rtol * expected.float().abs()
    assert bool((diff <= bound).all()), f"{what}: max abs difference {diff.max().item():.3g} (allowed atol={atol}, rtol={rtol})"


def assert_differ(a: torch.Tensor, b: torch.Tensor, what: str, min_diff: float = 1e-4) -> None:
    diff = (a.float() - b.float()).abs().max().item()
    assert diff > min_diff, f"{what}: max abs difference only {diff:.3g}; training changed nothing visible"


def assert_raises(exc_type: type[BaseException], fn: Callable[[], Any], what: str) -> BaseException:
    try:
        fn()
    except exc_type as exc:
        return exc
    raise AssertionError(f"{what}: expected {exc_type.__name__}, nothing was raised")


def prepared(config: Config, case: ModelCase, train: int = 0, seed: int = 0) -> SwiftModel:
    """``case``'s model with the adapter 'default' added (its random init seeded) and trained ``train`` steps."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Swift.prepare(case.build(), config)
    if train:
        train_steps(model, case, train)
    return model


def base_model(config: Config, case: ModelCase, dtype: torch.dtype | None = None) -> nn.Module:
    """``case``'s model (in ``dtype`` if given) as the tuner's ``prepare_model`` leaves it (e.g.
    quantized for QLoRA): the base that a fresh or disabled adapter must reproduce. The plain model
    for tuners that prepare nothing."""
    model = case.build()
    return tuner_instance(config).prepare_model(model if dtype is None else model.to(dtype))


def _trainable(model: SwiftModel, adapter: str = "default") -> dict[str, nn.Parameter]:
    return dict(model.tuners[adapter].named_trainable_parameters(model.model))


# -- the checks -------------------------------------------------------------------------------------------
def check_identity_at_init(config: Config, case: ModelCase) -> None:
    """A fresh adapter leaves the logits as the base model's."""
    base = logits_of(base_model(config, case), case)
    model = prepared(config, case)
    assert_close(logits_of(model, case), base, "logits right after adding the adapter vs the base model", atol=EXACT)


def check_only_adapter_trains(config: Config, case: ModelCase) -> None:
    """Training changes the adapter's parameters and nothing else (base too if it trains base params)."""
    tuner = tuner_instance(config)
    base = case.build()
    base_params = dict(base.named_parameters())
    base_before = {n: p.detach().clone() for n, p in base_params.items()}
    model = Swift.prepare(base, config)
    trainable = _trainable(model)
    assert trainable, "the adapter reports no trainable parameters"
    ids = {id(p) for p in trainable.values()}
    grad_ids = {id(p) for p in model.parameters() if p.requires_grad}
    assert grad_ids == ids, (
        f"{len(grad_ids - ids)} parameters require grad without being the adapter's, "
        f"{len(ids - grad_ids)} of the adapter's do not"
    )
    if not tuner.trains_base_parameters:
        base_ids = {id(p): n for n, p in base_params.items()}
        leaked = sorted(base_ids[i] for i in ids & set(base_ids))
        assert not leaked, f"base parameters are trainable but the tuner does not declare trains_base_parameters: {leaked[:5]}"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, case, WARMUP_STEPS)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    own = {n for n, p in model.named_parameters() if id(p) in ids}
    assert changed, "no parameter changed after training"
    assert changed <= own, f"parameters outside the adapter changed: {sorted(changed - own)[:5]}"
    if not tuner.trains_base_parameters:
        moved = [n for n, p in base_params.items() if not torch.equal(p, base_before[n])]
        assert not moved, f"base parameters changed: {moved[:5]}"


def check_disable_adapters(config: Config, case: ModelCase) -> None:
    """``disable_adapters()`` gives the base logits exactly; leaving it gives the adapted ones back."""
    tuner = tuner_instance(config)
    base = logits_of(base_model(config, case), case)
    model = prepared(config, case, train=WARMUP_STEPS)
    adapted = logits_of(model, case)
    assert_differ(adapted, base, "adapted vs base logits after training")
    with model.disable_adapters():
        disabled = logits_of(model, case)
    if not tuner.trains_base_parameters:
        assert_close(disabled, base, "logits with adapters disabled vs the base model")
    assert model.active_adapters == ["default"], f"active adapters changed to {model.active_adapters}"
    assert_close(logits_of(model, case), adapted, "logits after re-enabling vs before disabling")


def check_save_load(config: Config, case: ModelCase) -> None:
    """``save_pretrained`` then ``Swift.from_pretrained`` on a fresh base gives identical logits."""
    model = prepared(config, case, train=WARMUP_STEPS)
    adapted = logits_of(model, case)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        loaded = Swift.from_pretrained(case.build(), tmp)
    assert loaded.active_adapters == ["default"], f"loaded adapters: {loaded.active_adapters}"
    assert loaded.configs["default"] == model.configs["default"], "the loaded config differs from the saved one"
    assert not any(p.requires_grad for p in loaded.parameters()), "from_pretrained left parameters trainable"
    assert_close(logits_of(loaded, case), adapted, "logits after save / load vs before saving")
    for key, value in model.adapter_state_dict("default").items():
        assert torch.equal(loaded.adapter_state_dict("default")[key], value), f"tensor '{key}' changed on save / load"


def check_merge(config: Config, case: ModelCase) -> None:
    """Mergeable: merged == unmerged, unmerge restores, ``merge_and_unload`` gives a plain model.

    Not mergeable: ``merge_and_unload`` raises ``NotMergeableError`` and leaves the model working.
    """
    model = prepared(config, case, train=WARMUP_STEPS)
    adapted = logits_of(model, case)
    if not model.tuners["default"].mergeable:  # the instance: a bridge tuner may decide per config
        assert_raises(NotMergeableError, model.merge_and_unload, "merge_and_unload of a non-mergeable tuner")
        assert_raises(NotMergeableError, model.merge_adapter, "merge_adapter of a non-mergeable tuner")
        assert_close(logits_of(model, case), adapted, "logits after the refused merge")
        return
    base = logits_of(base_model(config, case), case)
    model.merge_adapter()
    assert_close(logits_of(model, case), adapted, "merged vs unmerged logits", MERGE_ATOL, MERGE_RTOL)
    model.unmerge_adapter()
    assert_close(logits_of(model, case), adapted, "logits after unmerge vs before merge", MERGE_ATOL, MERGE_RTOL)
    if not tuner_instance(config).trains_base_parameters:  # else there is no untouched base to return to
        with model.disable_adapters():
            assert_close(logits_of(model, case), base, "base logits after merge + unmerge", MERGE_ATOL, MERGE_RTOL)
    plain = model.merge_and_unload()
    assert not isinstance(plain, SwiftModel), "merge_and_unload returned a SwiftModel"
    left = [n for n, m in plain.named_modules() if isinstance(m, WrapperLayer)]
    assert not left, f"wrapper modules left after merge_and_unload: {left[:5]}"
    expected_keys = set(case.build().state_dict())
    assert set(plain.state_dict()) == expected_keys, (
        f"merged model's keys differ from the base's: extra {sorted(set(plain.state_dict()) - expected_keys)[:5]}"
    )
    assert_close(logits_of(plain, case), adapted, "merge_and_unload logits vs adapted logits", MERGE_ATOL, MERGE_RTOL)


def check_memorise(config: Config, case: ModelCase) -> None:
    """Loss on one fixed batch falls below half its start within ``MEMORISE_STEPS`` steps."""
    model = prepared(config, case)
    lr = tuner_instance(config).typical_learning_rate
    losses = train_steps(model, case, MEMORISE_STEPS, seed=0, lr=lr)
    assert all(math.isfinite(x) for x in losses), f"non-finite loss: {losses}"
    assert losses[-1] < 0.5 * losses[0], f"loss went {losses[0]:.4f} -> {losses[-1]:.4f} in {MEMORISE_STEPS} steps at lr {lr}"


def check_generate(config: Config, case: ModelCase, new_tokens: int = 4) -> None:
    """Greedy ``generate`` (KV cache) emits the argmax of the adapted full forward at every step."""
    model = prepared(config, case, train=WARMUP_STEPS)
    inputs = case.batch(0).inputs
    length = inputs["input_ids"].shape[1]
    kwargs = {"max_new_tokens": new_tokens, "do_sample": False}
    with torch.no_grad():
        out = model.generate(**inputs, **kwargs)
        assert out.shape == (case.batch_size, length + new_tokens), f"generate returned shape {tuple(out.shape)}"
        assert torch.equal(out[:, :length], inputs["input_ids"]), "generate changed the prompt tokens"
        full = case.logits(model, {"input_ids": out[:, :-1], "attention_mask": torch.ones_like(out[:, :-1])})
        predicted = full[:, length - 1 :].argmax(-1)
        assert torch.equal(predicted, out[:, length:]), (
            f"generated tokens {out[:, length:].tolist()} != argmax of the adapted forward {predicted.tolist()}"
        )
        with model.disable_adapters():
            disabled = model.generate(**inputs, **kwargs)
        base_out = base_model(config, case).generate(**inputs, **kwargs)
    if not tuner_instance(config).trains_base_parameters:  # else there is no untouched base to return to
        assert torch.equal(disabled, base_out), "generate with adapters disabled differs from the base model's"


def check_two_adapters(config: Config, case: ModelCase) -> None:
    """Two adapters of the tuner coexist; switching selects each one's logits; deleting one keeps the other."""
    base = logits_of(base_model(config, case), case)
    model = prepared(config, case, train=WARMUP_STEPS)
    first = logits_of(model, case)
    model.add_adapter("second", config, active=False)
    assert model.active_adapters == ["default"], f"active adapters after adding an inactive one: {model.active_adapters}"
    assert_close(logits_of(model, case), first, "'default' logits after adding an inactive second adapter", atol=EXACT)
    model.set_active_adapters(["second"])
    if model.tuners["second"].identity_at_init:
        assert_close(logits_of(model, case), base, "logits of the fresh 'second' alone vs the base", atol=EXACT)
    own = {id(p) for p in _trainable(model, "second").values()}
    assert own.isdisjoint(id(p) for p in _trainable(model).values()), "the two adapters share parameters"
    assert own == {id(p) for p in model.parameters() if p.requires_grad}, "only 'second' should be trainable"
    train_steps(model, case, WARMUP_STEPS, seed=2)
    second = logits_of(model, case)
    assert_differ(second, first, "'second' vs 'default' logits")
    model.set_active_adapters(["default"])
    assert_close(logits_of(model, case), first, "'default' logits after training 'second'", atol=EXACT)
    model.set_active_adapters(["second"])
    assert_close(logits_of(model, case), second, "'second' logits after switching back", atol=EXACT)
    state = {k: v.clone() for k, v in model.adapter_state_dict("second").items()}
    model.delete_adapter("default")
    assert list(model.tuners) == ["second"] and model.active_adapters == ["second"], (
        f"after deleting 'default': adapters {list(model.tuners)}, active {model.active_adapters}"
    )
    assert_raises(ConfigError, lambda: model.set_active_adapters(["default"]), "activating a deleted adapter")
    assert_close(logits_of(model, case), second, "'second' logits after deleting 'default'", atol=EXACT)
    after = model.adapter_state_dict("second")
    assert set(after) == set(state) and all(torch.equal(after[k], v) for k, v in state.items()), (
        "deleting 'default' changed the tensors of 'second'"
    )
    with model.disable_adapters():
        assert_close(logits_of(model, case), base, "base logits with 'second' disabled", atol=EXACT)


def check_merge_two(config: Config, case: ModelCase) -> None:
    """Two adapters active together: merging them (one at a time) keeps the logits of both unmerged,
    and unmerging restores them (``adapters_add_up``)."""
    model = prepared(config, case, train=WARMUP_STEPS)
    first = logits_of(model, case)
    model.add_adapter("second", config, active=False)
    model.set_active_adapters(["second"])
    train_steps(model, case, WARMUP_STEPS, seed=2)
    model.set_active_adapters(["default", "second"])
    both = logits_of(model, case)
    assert_differ(both, first, "logits of both adapters vs 'default' alone")
    model.merge_adapter()
    assert_close(logits_of(model, case), both, "both adapters merged vs both unmerged", MERGE_ATOL, MERGE_RTOL)
    model.unmerge_adapter()
    assert_close(logits_of(model, case), both, "after unmerging both vs before", MERGE_ATOL, MERGE_RTOL)


def check_half_precision_base(config: Config, case: ModelCase) -> None:
    """On a bf16 base the parameters the adapter adds are fp32 (``adapter_dtype="auto"``), the base's
    keep their dtype, the outputs stay bf16, and one backward gives every added parameter an fp32 gradient."""
    base = case.build().to(torch.bfloat16)
    originals = list(base.parameters())  # kept alive: ids of freed tensors are reused
    base_ids = {id(p) for p in originals}
    prepared_base = base_model(config, case, torch.bfloat16)
    with torch.no_grad():
        base_dtype = case.logits(prepared_base, case.batch(0).inputs).dtype
    model = Swift.prepare(base, config)
    added = {n: p for n, p in _trainable(model).items() if id(p) not in base_ids and p.is_floating_point()}
    copies = {id(p) for m in model.modules() if type(m).__name__ == "TrainableCopy" for p in m.modules_to_save.parameters()}
    wrong = [f"{n}: {p.dtype}" for n, p in added.items() if id(p) not in copies and p.dtype != torch.float32]
    assert not wrong, f"parameters the adapter added are not fp32 on a bf16 base: {wrong[:5]}"
    # The base as the tuner's prepare_model leaves it (QLoRA upcasts what it does not quantize, as PEFT does).
    expected = Counter((p.dtype, p.numel()) for p in prepared_base.parameters())
    got = Counter((p.dtype, p.numel()) for p in model.parameters() if not any(p is q for q in added.values()))
    assert got == expected, f"base parameters changed dtype: {sorted(map(str, (got - expected).elements()))[:5]}"
    assert case.logits(model, case.batch(0).inputs).dtype == base_dtype, "the adapted model's output dtype differs from the base's"
    loss = case.loss(model, case.batch(0))
    assert torch.isfinite(loss), f"non-finite loss {loss.item()} on a bf16 base"
    loss.backward()
    missing = [n for n, p in added.items() if p.requires_grad and (p.grad is None or p.grad.dtype != p.dtype)]
    assert not missing, f"added parameters without a gradient of their own dtype after backward: {missing[:5]}"


# -- the catalogue -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Config, ModelCase], None]
    #: Returns why the check does not apply to (tuner class, case), or None when it does.
    applies: Callable[[type[Tuner], ModelCase], str | None] = lambda cls, case: None


def _needs_identity(cls: type[Tuner], case: ModelCase) -> str | None:
    return None if cls.identity_at_init else f"tuner '{cls.name}' is not identity_at_init"


def _needs_causal_lm(cls: type[Tuner], case: ModelCase) -> str | None:
    return None if case.is_causal_lm else f"model '{case.name}' is not a causal LM"


def _needs_capacity(cls: type[Tuner], case: ModelCase) -> str | None:
    return None if cls.memorises else f"tuner '{cls.name}' declares memorises = False (too few parameters)"


def _needs_token_inputs(cls: type[Tuner], case: ModelCase) -> str | None:
    # A bf16 plain module would need its float inputs converted too: that is the caller's business.
    return None if case.is_transformers else f"model '{case.name}' takes float inputs, not token ids"


def _needs_own_parameters(cls: type[Tuner], case: ModelCase) -> str | None:
    return f"tuner '{cls.name}' trains base parameters, which two adapters would share" if cls.trains_base_parameters else None


def _needs_additive_merge(cls: type[Tuner], case: ModelCase) -> str | None:
    if not cls.mergeable:
        return f"tuner '{cls.name}' is not mergeable"
    if not cls.adapters_add_up:
        return f"tuner '{cls.name}' declares adapters_add_up = False (its updates depend on each other)"
    return _needs_own_parameters(cls, case)


CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check("identity", check_identity_at_init, _needs_identity),
        Check("only_adapter_trains", check_only_adapter_trains),
        Check("disable", check_disable_adapters),
        Check("save_load", check_save_load),
        Check("merge", check_merge),
        Check("memorise", check_memorise, _needs_capacity),
        Check("generate", check_generate, _needs_causal_lm),
        Check("two_adapters", check_two_adapters, _needs_own_parameters),
        Check("merge_two", check_merge_two, _needs_additive_merge),
        Check("half_precision_base", check_half_precision_base, _needs_token_inputs),
    )
}


def skip_reason(tuner_cls: type[Tuner] | Tuner, case: ModelCase, check: str, default_config: bool = True) -> str | None:
    """Why ``check`` does not apply to ``tuner_cls`` on ``case`` (from the flags), or None.

    ``tuner_cls`` may be an instance (``tuner_instance``): its flags can depend on the config.

    ``default_config``: the tuner runs with its defaults (no field set but ``tuner``).
    """
    if not case.is_transformers and (tuner_cls.needs_transformers_model or tuner_cls.prompt_learning):
        return f"tuner '{tuner_cls.name}' needs a transformers model; '{case.name}' is a plain nn.Module"
    if not case.is_transformers and default_config and tuner_cls.default_targets_need_transformers:
        return f"tuner '{tuner_cls.name}' needs explicit targets on a plain nn.Module like '{case.name}'"
    return CHECKS[check].applies(tuner_cls, case)


def is_default_config(config: Config) -> bool:
    """No field is set but ``tuner``."""
    if isinstance(config, TunerConfig):
        return not (config.model_fields_set - {"tuner"})
    return set(config) <= {"tuner"}


def run_check(check: str, config: Config, case: ModelCase) -> None:
    """Run one check by name; raises ``NotApplicable`` when the tuner's flags rule it out."""
    if check not in CHECKS:
        raise KeyError(f"unknown check '{check}'; known: {', '.join(CHECKS)}")
    reason = skip_reason(tuner_instance(config), case, check, is_default_config(config))
    if reason:
        raise NotApplicable(reason)
    CHECKS[check].run(config, case)
