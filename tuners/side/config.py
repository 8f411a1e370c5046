"""``SideConfig``: which blocks get a side network, what kind, and how the gate starts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from swiftune.config import TunerConfig


class SideConfig(TunerConfig):
    """A side network per block, blended with the block's output through a learned gate."""

    tuner: Literal["side"] = "side"

    target_modules: str | list[str] | None = Field(
        None,
        description="blocks that get a side network: a regex matched against full module names, or a list of "
        "names / suffixes (default: every block of the model's layer list)",
    )
    exclude_modules: str | list[str] | None = Field(None, description="same syntax as target_modules")
    side_type: Literal["mlp", "transformer"] = Field(
        "mlp", description="'mlp': per-position MLP; 'transformer': a tiny attention + MLP block"
    )
    side_width: int = Field(64, ge=1, description="hidden width of the side network")
    num_heads: int = Field(4, ge=1, description="attention heads of the 'transformer' side network")
    act: Literal["gelu", "relu", "silu", "tanh"] = Field("gelu", description="activation of the side network")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the side network's output")
    alpha_init: float = Field(0.0, description="initial gate logit: g = sigmoid(alpha) weighs the main output")
    hidden_size: int | None = Field(
        None, ge=1, description="width of the blocks' hidden states (default: the model config's, or a Linear's)"
    )
    causal: bool | None = Field(
        None, description="causal side attention (default: true for models that generate, false otherwise)"
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "SideConfig":
        if self.side_type == "transformer" and self.side_width % self.num_heads:
            raise ValueError(f"side_width ({self.side_width}) must be divisible by num_heads ({self.num_heads})")
        return self
