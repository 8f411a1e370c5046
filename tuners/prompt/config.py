"""``PromptConfig``: PEFT's ``PromptTuningConfig`` fields, plus P-Tuning's prompt encoder."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from swiftune.config import TunerConfig


class PromptConfig(TunerConfig):
    """Prompt tuning: ``num_virtual_tokens`` trained embeddings in front of the input embeddings.

    With ``encoder_type`` set this is P-Tuning: the embeddings pass through a small MLP or LSTM
    during training; the file stores what it produces, so PEFT loads it as prompt tuning.
    """

    tuner: Literal["prompt"] = "prompt"
    peft_type: ClassVar[str] = "PROMPT_TUNING"

    num_virtual_tokens: int = Field(20, ge=1, description="number of virtual tokens put in front of the input")
    prompt_tuning_init: Literal["RANDOM", "TEXT", "SAMPLE_VOCAB"] = Field(
        "RANDOM",
        description="RANDOM: normal(0, 1); TEXT: embeddings of prompt_tuning_init_text's tokens (repeated or cut "
        "to length); SAMPLE_VOCAB: embeddings of random vocabulary tokens",
    )
    prompt_tuning_init_text: str | None = Field(None, description="the text for prompt_tuning_init='TEXT'")
    tokenizer_name_or_path: str | None = Field(
        None, description="tokenizer for prompt_tuning_init='TEXT' (default: the base model's name_or_path)"
    )
    tokenizer_kwargs: dict[str, Any] | None = Field(None, description="extra AutoTokenizer.from_pretrained arguments")
    encoder_type: Literal["MLP", "LSTM"] | None = Field(
        None, description="P-Tuning: train the embeddings through this prompt encoder (folded on save)"
    )
    encoder_hidden_size: int | None = Field(None, ge=1, description="prompt encoder width (default: token_dim)")
    encoder_num_layers: int = Field(2, ge=1, description="LSTM layers of the LSTM prompt encoder")
    encoder_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout inside the prompt encoder")
    token_dim: int | None = Field(None, ge=1, description="embedding width; from the model")
    num_attention_heads: int | None = Field(None, ge=1, description="from the model (PEFT bookkeeping)")
    num_layers: int | None = Field(None, ge=1, description="from the model (PEFT bookkeeping)")
    num_transformer_submodules: Literal[1] | None = Field(
        None, description="1 for decoder-only and encoder-only models (encoder-decoder ones are not supported)"
    )
    task_type: str | None = Field(None, description="PEFT task type; from the model class (e.g. CAUSAL_LM)")
    base_model_name_or_path: str | None = Field(None, description="base model the adapter was trained on")

    @model_validator(mode="after")
    def _init_needs_text(self) -> "PromptConfig":
        if self.prompt_tuning_init == "TEXT" and not self.prompt_tuning_init_text:
            raise ValueError("prompt_tuning_init='TEXT' needs prompt_tuning_init_text")
        if self.tokenizer_kwargs and self.prompt_tuning_init != "TEXT":
            raise ValueError("tokenizer_kwargs is only used with prompt_tuning_init='TEXT'")
        return self
