"""``LoraConfig``: field names follow PEFT's ``LoraConfig`` so files and habits move across."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from swiftune.config import TunerConfig


#: PiSSA with a fast randomized SVD of ``N`` power iterations (PEFT's spelling).
PissaNiter = Annotated[str, StringConstraints(pattern=r"^pissa_niter_[0-9]+$")]
InitLoraWeights = bool | Literal["gaussian", "pissa", "olora"] | PissaNiter


class LoraConfig(TunerConfig):
    """Low-rank adaptation: ``W x + (B A x) * scaling`` on the targeted layers."""

    tuner: Literal["lora"] = "lora"
    peft_type: ClassVar[str] = "LORA"

    r: int = Field(8, ge=1, description="rank of the update")
    lora_alpha: int | float = Field(8, gt=0, description="scaling numerator: scaling = lora_alpha / r")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the LoRA branch input")
    use_rslora: bool = Field(False, description="rank-stabilised scaling lora_alpha / sqrt(r)")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="which base biases to train and save")
    target_modules: str | list[str] | None = Field(
        "all-linear",
        description="'all-linear', a regex matched against full module names, or a list of names / suffixes",
    )
    exclude_modules: str | list[str] | None = Field(None, description="same syntax as target_modules")
    modules_to_save: list[str] | None = Field(None, description="modules trained in full and saved (e.g. a new head)")
    layers_to_transform: int | list[int] | None = Field(None, description="only these layer indices")
    layers_pattern: str | list[str] | None = Field(None, description="name of the layer list, e.g. 'layers'")
    init_lora_weights: InitLoraWeights = Field(
        True,
        description=(
            "True: A kaiming-uniform, B zero; 'gaussian': A normal(1/r), B zero; False: both random (a non-identity "
            "start); 'pissa' / 'pissa_niter_N': A, B from the top-r SVD of the weight, the rest stays in the base; "
            "'olora': A, B from a QR of the weight, likewise"
        ),
    )
    use_dora: bool = Field(
        False, description="DoRA: a trainable magnitude per output row, the LoRA update changes the direction"
    )
    fan_in_fan_out: bool = Field(False, description="weights stored (in, out); detected for GPT-2 Conv1D")
    task_type: str | None = Field(None, description="PEFT task type, kept for PEFT's loader")
    base_model_name_or_path: str | None = Field(None, description="base model the adapter was trained on")

    @property
    def scaling(self) -> float:
        return self.lora_alpha / (self.r**0.5 if self.use_rslora else self.r)
