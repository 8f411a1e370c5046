"""``PrefixConfig``: PEFT's ``PrefixTuningConfig`` fields, so adapter files move both ways."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from swiftune.config import TunerConfig


class PrefixConfig(TunerConfig):
    """Prefix tuning: ``num_virtual_tokens`` trained keys and values in front of every layer's cache.

    The shape fields (``token_dim``, ``num_attention_heads``, ``num_layers``) are read from the model
    when left unset, as PEFT does: for grouped-query attention ``num_attention_heads`` is the number of
    key/value heads and ``token_dim`` their total width.
    """

    tuner: Literal["prefix"] = "prefix"
    peft_type: ClassVar[str] = "PREFIX_TUNING"

    num_virtual_tokens: int = Field(20, ge=1, description="prefix length: key/value positions added to every layer")
    prefix_projection: bool = Field(
        False,
        description="train the prefix through an MLP (embedding -> tanh MLP); folded into plain prefixes on save",
    )
    encoder_hidden_size: int | None = Field(
        None, ge=1, description="hidden width of the prefix_projection MLP (default: token_dim)"
    )
    init_weights: Literal["zero"] | None = Field(
        None, description="None: random normal prefixes; 'zero': zero prefixes (or a zero last MLP layer)"
    )
    token_dim: int | None = Field(None, ge=1, description="key/value width per layer (kv heads x head dim); from the model")
    num_attention_heads: int | None = Field(None, ge=1, description="key/value heads per layer; from the model")
    num_layers: int | None = Field(None, ge=1, description="number of transformer layers; from the model")
    num_transformer_submodules: Literal[1] | None = Field(
        None, description="1 for decoder-only and encoder-only models (encoder-decoder ones are not supported)"
    )
    task_type: str | None = Field(None, description="PEFT task type; from the model class (e.g. CAUSAL_LM)")
    base_model_name_or_path: str | None = Field(None, description="base model the adapter was trained on")
