"""``AdapterConfig``: where the Houlsby bottlenecks go and how wide they are."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from swiftune.config import TunerConfig

#: The adapter's own default (model families do not set it; see docs/models.md): the attention
#: output and MLP output projections of the common families: ``o_proj`` /
#: ``down_proj`` (llama, qwen2, mistral, gemma, phi3), ``c_proj`` (gpt2), ``out_proj`` / ``fc2``
#: (opt, clip-like), ``dense_4h_to_h`` (falcon, gpt-neox style), ``wo`` / ``w2``, and
#: ``attention.output.dense`` / ``output.dense`` (bert, roberta).
DEFAULT_TARGETS = r".*\.(o_proj|out_proj|down_proj|c_proj|dense_4h_to_h|fc2|wo|w2|output\.dense)"
DEFAULT_REDUCTION = 16.0
#: Floor of the default width, so small models still get a useful bottleneck.
DEFAULT_MIN_DIM = 16

Activation = Literal["gelu", "relu", "silu", "tanh"]


class AdapterConfig(TunerConfig):
    """Houlsby adapters: ``y + up(act(down(dropout(y))))`` on the output ``y`` of each target."""

    tuner: Literal["adapter"] = "adapter"

    target_modules: str | list[str] = Field(
        DEFAULT_TARGETS,
        description="modules whose output gets an adapter: a regex matched against full module names, or a "
        "list of names / suffixes (default: every attention output and MLP output projection)",
    )
    exclude_modules: str | list[str] | None = Field(None, description="same syntax as target_modules")
    layers_to_transform: int | list[int] | None = Field(None, description="only these layer indices")
    layers_pattern: str | list[str] | None = Field(None, description="name of the layer list, e.g. 'layers'")
    adapter_dim: int | None = Field(
        None,
        ge=1,
        description=f"bottleneck width (default: features / {DEFAULT_REDUCTION:g}, at least {DEFAULT_MIN_DIM})",
    )
    reduction_factor: float | None = Field(
        None, gt=0, description="bottleneck width = features / reduction_factor (instead of adapter_dim)"
    )
    act: Activation = Field("gelu", description="activation between the down and up projections")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter's input")

    @model_validator(mode="after")
    def _one_width(self) -> "AdapterConfig":
        if self.adapter_dim is not None and self.reduction_factor is not None:
            raise ValueError("set adapter_dim or reduction_factor, not both")
        return self

    def bottleneck(self, features: int) -> int:
        """The bottleneck width for a module with ``features`` outputs."""
        if self.adapter_dim is not None:
            return self.adapter_dim
        if self.reduction_factor is not None:
            return max(1, round(features / self.reduction_factor))
        return max(DEFAULT_MIN_DIM, round(features / DEFAULT_REDUCTION))
