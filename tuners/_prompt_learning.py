"""What the prompt-learning tuners share: ``prompt``, ``prefix`` and the PEFT bridge's prompt tuners.

Their trained tensors live in one ``ModuleDict`` keyed by adapter name, attached to the base model
(so ``model.parameters()``, optimizers, ``.to()`` and ``requires_grad`` bookkeeping see them); they
act by rewriting forward / generate keyword arguments, never by touching the model's modules.
"""

from __future__ import annotations

import functools
import inspect
import warnings
import weakref
from typing import Any

import torch
from torch import nn

from swiftune.data import IGNORE_INDEX
from swiftune.errors import ConfigError

#: Attribute of the base model holding every prompt-learning adapter's encoder.
CONTAINER = "swiftune_prompt_encoder"

#: PEFT ``task_type`` by the suffix of the model class name (PEFT picks its model class by it).
_TASK_TYPES = (
    ("ForCausalLM", "CAUSAL_LM"),
    ("LMHeadModel", "CAUSAL_LM"),
    ("ForSequenceClassification", "SEQ_CLS"),
    ("ForTokenClassification", "TOKEN_CLS"),
    ("ForQuestionAnswering", "QUESTION_ANS"),
)


# -- the encoders' container -----------------------------------------------------------------------------
def encoders(model: nn.Module) -> nn.ModuleDict:
    """The container of ``model`` (created on first use)."""
    container = model._modules.get(CONTAINER)
    if container is None:
        if hasattr(model, CONTAINER):
            raise ValueError(f"the model already has an attribute '{CONTAINER}' that is not swiftune's")
        container = nn.ModuleDict()
        model.add_module(CONTAINER, container)
    return container


def encoder_of(model: nn.Module, adapter_name: str) -> nn.Module:
    return encoders(model)[adapter_name]


def attach(model: nn.Module, adapter_name: str, encoder: nn.Module) -> None:
    encoders(model)[adapter_name] = encoder


def detach(model: nn.Module, adapter_name: str) -> None:
    """Drop the adapter's encoder; the container goes when it is empty, leaving the plain base."""
    container = model._modules.get(CONTAINER)
    if container is None:
        return
    if adapter_name in container:
        del container[adapter_name]
    if not len(container):
        del model._modules[CONTAINER]


def fold_for_loading(encoder: nn.Module, tuner: str, adapter_name: str) -> None:
    """Files hold folded rows: an encoder still training through its MLP / LSTM drops it (warned)."""
    if not encoder.folded:
        warnings.warn(
            f"{tuner}: adapter '{adapter_name}' trains through a reparameterising encoder, but adapter files "
            "hold its folded output; training continues on the loaded rows directly (an optimizer state "
            "saved for the encoder no longer fits)",
            stacklevel=3,
        )
    encoder.fold()


def named_parameters(model: nn.Module, adapter_name: str) -> list[tuple[str, nn.Parameter]]:
    prefix = f"{CONTAINER}.{adapter_name}."
    return [(prefix + n, p) for n, p in encoder_of(model, adapter_name).named_parameters()]


# -- the model's shape --------------------------------------------------------------------------------------
def text_config(model: nn.Module) -> Any:
    """The (decoder) text config: the language model's part of multimodal configs."""
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter(decoder=True) if callable(getter) else config


def check_decoder_or_encoder(model: nn.Module, tuner: str) -> None:
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(
            f"encoder-decoder models ({type(model).__name__}) are not supported by swiftune's '{tuner}' tuner; "
            "the 'peft' bridge tuner runs PEFT's implementation for them"
        )


def config_value(config: Any, *names: str) -> Any:
    """The first of ``names`` that the config sets."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def task_type(model: nn.Module) -> str | None:
    """PEFT's task type for the model's class (PEFT applies virtual tokens only with one set)."""
    cls = type(model).__name__
    return next((t for suffix, t in _TASK_TYPES if cls.endswith(suffix)), None)


def fill(config: Any, derived: dict[str, Any], tuner: str) -> Any:
    """``config`` with unset fields taken from ``derived``; set ones must agree with the model."""
    update = {}
    for field, value in derived.items():
        given = getattr(config, field)
        if given is None:
            update[field] = value
        elif value is not None and given != value:
            raise ValueError(f"{field}={given!r} does not fit the model, which needs {field}={value!r}")
    return config.model_copy(update=update) if update else config


# -- rewriting the inputs -------------------------------------------------------------------------------------
def bind_inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments all by keyword (``model(ids)`` -> ``input_ids=ids``)."""
    if not args:
        return dict(kwargs)
    bound = inspect.signature(module.forward).bind_partial(*args, **kwargs)
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        param = bound.signature.parameters[name]
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(f"{type(module).__name__}: pass the model inputs by keyword with a prompt-learning adapter")
        else:
            out[name] = value
    return out


def token_inputs(kwargs: dict[str, Any], tuner: str) -> torch.Tensor:
    """``input_ids`` or ``inputs_embeds``: what gives the batch size and length."""
    for key in ("input_ids", "inputs_embeds"):
        if kwargs.get(key) is not None:
            return kwargs[key]
    raise ValueError(f"{tuner}: the inputs carry neither input_ids nor inputs_embeds")


#: Keyword names of the KV cache: transformers >= 5.x calls it ``cache`` (``past_key_values`` is
#: its deprecated alias, still sent by older callers).
CACHE_KEYS = ("cache", "past_key_values")


def cache_key(model: nn.Module, kwargs: dict[str, Any]) -> str:
    """The name this call passes the cache under (or, if none, the one the model's forward takes)."""
    for key in CACHE_KEYS:
        if kwargs.get(key) is not None:
            return key
    return _forward_cache_key(type(model))


@functools.lru_cache(maxsize=None)
def _forward_cache_key(model_class: type) -> str:
    """The cache keyword of a model class's forward (looked up once per class, not per call)."""
    params = inspect.signature(model_class.forward).parameters
    return "past_key_values" if "past_key_values" in params and "cache" not in params else "cache"


def get_cache(kwargs: dict[str, Any]) -> Any:
    """The call's KV cache, under either name (None when it starts a sequence)."""
    found = [kwargs[k] for k in CACHE_KEYS if kwargs.get(k) is not None]
    if len(found) > 1:
        raise ValueError("pass the KV cache as 'cache' or 'past_key_values', not both")
    return found[0] if found else None


def cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    if not hasattr(cache, "get_seq_length"):
        raise TypeError("the KV cache (cache / past_key_values) must be a transformers Cache (e.g. DynamicCache), not a tuple")
    return int(cache.get_seq_length())


def caller_excludes_virtual(kwargs: dict[str, Any], num_virtual: int, total: int, default: bool) -> bool:
    """Whether the caller's attention mask / positions leave out the virtual positions.

    ``total``: key positions the model will attend over (cache + virtual + new). A mask of
    ``total`` positions already counts them; one of ``total - num_virtual`` does not; without a
    mask, ``default`` decides (True when the caller cannot know about them, e.g. in ``generate``).
    """
    mask = kwargs.get("attention_mask")
    if mask is None:
        return default
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError("prompt-learning adapters need a 2-D attention_mask (batch, sequence) or none")
    if mask.shape[1] == total:
        return False
    if mask.shape[1] == total - num_virtual:
        return True
    raise ValueError(
        f"attention_mask has {mask.shape[1]} positions; expected {total - num_virtual} (or {total} counting "
        f"the {num_virtual} virtual tokens)"
    )


def prepend(kwargs: dict[str, Any], key: str, num_virtual: int, value: int) -> None:
    """Put ``num_virtual`` columns of ``value`` in front of a (batch, seq) tensor argument."""
    tensor = kwargs.get(key)
    if tensor is not None:
        kwargs[key] = torch.cat([tensor.new_full((tensor.shape[0], num_virtual), value), tensor], dim=1)


def shift_positions(kwargs: dict[str, Any], num_virtual: int, *, with_virtual: bool) -> None:
    """Move the caller's positions past the virtual tokens (and number these first when they are new inputs)."""
    positions = kwargs.get("position_ids")
    if positions is None:
        return
    shifted = positions + num_virtual
    if with_virtual:
        virtual = torch.arange(num_virtual, dtype=positions.dtype, device=positions.device)
        shifted = torch.cat([virtual.expand(*positions.shape[:-1], num_virtual), shifted], dim=-1)
    kwargs["position_ids"] = shifted


def check_no_checkpointing(model: nn.Module, tuner: str) -> None:
    """Activation checkpointing drops (or re-adds) the KV cache when layers are recomputed."""
    if model.training and any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules()):
        raise ConfigError(
            f"{tuner}: prefix tuning does not work with gradient checkpointing (it drops the KV cache that "
            "carries the prefixes); disable it, or use the 'prompt' or 'lora' tuner"
        )


def prepend_virtual_tokens(model: nn.Module, kwargs: dict[str, Any], adapter_name: str, num: int, tuner: str,
                           seen_caches: Any) -> dict[str, Any]:
    """``kwargs`` of a forward call with the adapter's virtual tokens in front when the call starts a
    sequence; on a decoding step (the tokens are in the KV cache already) only mask and positions
    are extended. ``seen_caches`` (a weak set) remembers the caches this adapter prefilled."""
    tokens = token_inputs(kwargs, tuner)
    batch, length = tokens.shape[:2]
    cache = get_cache(kwargs)
    past = cache_length(cache)
    if past:
        if caller_excludes_virtual(kwargs, num, past + length, default=cache in seen_caches):
            prepend(kwargs, "attention_mask", num, 1)
            shift_positions(kwargs, num, with_virtual=False)
        return kwargs
    if cache is not None:
        seen_caches.add(cache)
    if caller_excludes_virtual(kwargs, num, num + length, default=True):
        prepend(kwargs, "attention_mask", num, 1)
        shift_positions(kwargs, num, with_virtual=True)
    embeds = kwargs.pop("inputs_embeds", None)
    ids = kwargs.pop("input_ids", None)
    if embeds is None:
        embeds = model.get_input_embeddings()(ids)
    prompts = encoder_of(model, adapter_name)().to(embeds.dtype)
    kwargs["inputs_embeds"] = torch.cat([prompts.unsqueeze(0).expand(batch, -1, -1), embeds], dim=1)
    prepend(kwargs, "labels", num, IGNORE_INDEX)
    prepend(kwargs, "token_type_ids", num, 0)
    return kwargs


class InputRewriter:
    """Plumbing shared by tuners that rewrite the model's forward inputs (prompt, prefix, the bridge's
    prompt methods): a forward pre-hook that, while the adapter is active, replaces the call's
    arguments with ``self.rewrite(model, kwargs)``. Mix in before ``Tuner``; call
    ``_init_rewriter()`` in ``__init__`` and ``_install_hook(model)`` in ``inject``."""

    adapter_name: str

    def _init_rewriter(self) -> None:
        self.active = False
        self._hook: torch.utils.hooks.RemovableHandle | None = None
        self._caches: weakref.WeakSet[Any] = weakref.WeakSet()  # KV caches this adapter prefilled

    def _install_hook(self, model: nn.Module) -> None:
        self._hook = model.register_forward_pre_hook(self._pre_hook, with_kwargs=True)

    def rewrite(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def set_active(self, model: nn.Module, active: bool) -> None:
        self.active = active

    def remove(self, model: nn.Module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        detach(model, self.adapter_name)

    def _pre_hook(self, model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self.active:
            return None
        return (), self.rewrite(model, bind_inputs(model, args, kwargs))
