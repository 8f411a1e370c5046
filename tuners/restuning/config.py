"""``ResTuningConfig``: which blocks the bypass reads, where it lands, how wide it is."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swiftune.config import TunerConfig


class ResTuningConfig(TunerConfig):
    """Res-Tuning-Bypass: a ladder over detached block outputs, added to the head's input."""

    tuner: Literal["restuning"] = "restuning"

    target_modules: str | list[str] | None = Field(
        None,
        description="blocks whose (detached) outputs the ladder reads, in forward order: a regex matched against "
        "full module names, or a list of names / suffixes (default: every block of the model's layer list)",
    )
    exclude_modules: str | list[str] | None = Field(None, description="same syntax as target_modules")
    head: str | None = Field(
        None, description="module whose input receives the bypass (default: the output embeddings, e.g. lm_head)"
    )
    hidden_size: int | None = Field(
        None, ge=1, description="width of the tapped hidden states (default: the model config's, or a Linear's)"
    )
    bypass_dim: int = Field(64, ge=1, description="width of the bypass stream")
    act: Literal["gelu", "relu", "silu", "tanh"] = Field("gelu", description="activation of each ladder step")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the hidden states the ladder reads")
