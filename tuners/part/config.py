"""Configs of the selective tuners: ``part`` (parameters chosen by regex) and ``bitfit`` (biases)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swiftune.config import TunerConfig

Selector = str | list[str]


class PartConfig(TunerConfig):
    """Train a per-adapter change of the selected existing parameters; the base stays frozen."""

    tuner: Literal["part"] = "part"

    target_parameters: Selector | None = Field(
        None,
        description="parameters to train: a regex matched in full against parameter names "
        r"(e.g. '.*\.bias' or 'model\.layers\.(10|11)\..*'), or a list of names / name suffixes "
        "(default: every parameter of the last block of the model's block list)",
    )
    exclude_parameters: Selector | None = Field(None, description="same syntax as target_parameters; left frozen")


class BitFitConfig(TunerConfig):
    """BitFit: train the biases (and, optionally, the normalisation layers' weights)."""

    tuner: Literal["bitfit"] = "bitfit"

    norms: bool | Literal["auto"] = Field(
        "auto",
        description="also train the parameters of normalisation layers (LayerNorm, RMSNorm, ...); 'auto': "
        "only when the model has no bias at all (Llama-style models), so that BitFit has something to train",
    )
    exclude_parameters: Selector | None = Field(None, description="regex or names / suffixes of parameters left frozen")
