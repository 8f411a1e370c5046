"""``FullConfig``: full-parameter fine-tuning, optionally with some parameters kept frozen."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swiftune.config import TunerConfig


class FullConfig(TunerConfig):
    """Every parameter of the base model trains (but ``freeze_parameters``)."""

    tuner: Literal["full"] = "full"

    freeze_parameters: str | list[str] | None = Field(
        None,
        description="parameters left frozen: a regex matched in full against parameter names "
        r"(e.g. 'model\.embed_tokens\..*'), or a list of names / name suffixes; they are still saved",
    )
    max_shard_size: str = Field(
        "2GB", description="largest weight file; bigger models are saved in shards with an index, as transformers does"
    )
