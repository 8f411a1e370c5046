"""``swiftune rlhf``'s arguments: sft's, plus the preference method and its knobs (ms-swift's names).

``RlhfArguments`` extends ``SftArguments``, so model, data, tuner, training, resume and distributed
flags read exactly as sft's; the same model serves flags, a YAML file and ``swiftune.rlhf(...)``.
Knobs left unset take TRL's default for the method (SimPO's ``beta`` and ``cpo_alpha`` excepted:
SimPO is CPO's trainer with ``loss_type="simpo"``, and the paper's setting is beta 2, no NLL term).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .arguments import SftArguments

RlhfType = Literal["dpo", "orpo", "kto", "simpo", "cpo", "grpo"]

#: Methods whose loss compares the policy with a reference model (the others are reference-free).
NEEDS_REFERENCE = ("dpo", "kto")
#: sft's lean-training switches and its non-chat tasks: rlhf's losses run inside TRL's trainers on a causal LM.
SFT_ONLY = ("packing", "padding_free", "answer_logits_only", "fused_head_loss", "compile", "cast_frozen_weights",
            "lorap_lr_ratio", "task")


class RlhfArguments(SftArguments):
    """``swiftune rlhf``: preference tuning (DPO, ORPO, KTO, SimPO, CPO, GRPO) with one tuner on TRL."""

    rlhf_type: RlhfType = Field("dpo", description="preference method: dpo, orpo, kto, simpo, cpo or grpo")
    dataset: list[str] = Field(default_factory=list, description="preference data name_or_path[:split][#N]; repeatable (required)")
    learning_rate: float = Field(1e-4, gt=0, description="peak learning rate (1e-4 suits LoRA; 5e-7 to 5e-6 for full fine-tuning)")
    ref_model: str | None = Field(None, description="reference model (default: the policy with its adapters disabled; a copy of --model for full fine-tuning)")
    beta: float | None = Field(None, description="strength of the tie to the reference / reward scale (default: TRL's for the method; 2.0 for simpo)")
    loss_type: list[str] | None = Field(None, description="TRL's loss_type of the method (dpo: sigmoid, hinge, ipo, ...; cpo: sigmoid, hinge, ipo, simpo; kto: kto, apo_zero_unpaired)")
    rpo_alpha: float | None = Field(None, description="dpo: weight of an added NLL loss on the chosen answers (RPO)")
    simpo_gamma: float = Field(0.5, description="simpo: target reward margin")
    cpo_alpha: float | None = Field(None, description="cpo / simpo: weight of the NLL loss on chosen answers (default: 1.0 for cpo, 0.0 for simpo)")
    label_smoothing: float = Field(0.0, ge=0, le=0.5, description="dpo / cpo: conservative (noisy-label) smoothing")
    desirable_weight: float = Field(1.0, gt=0, description="kto: weight of the losses of desirable answers")
    undesirable_weight: float = Field(1.0, gt=0, description="kto: weight of the losses of undesirable answers")
    max_completion_length: int = Field(256, ge=1, description="grpo: tokens generated per completion")
    num_generations: int = Field(4, ge=2, description="grpo: completions sampled per prompt (the group)")
    reward_funcs: list[str] = Field(default_factory=list, description="grpo: registered reward functions (swiftune list rewards); repeatable")
    reward_weights: list[float] | None = Field(None, description="grpo: one weight per reward function (default: all 1)")
    temperature: float = Field(1.0, gt=0, description="grpo: sampling temperature of the generations")
    top_p: float = Field(1.0, gt=0, le=1, description="grpo: nucleus sampling mass of the generations")
    top_k: int | None = Field(None, ge=1, description="grpo: sample among the k likeliest tokens")
    repetition_penalty: float = Field(1.0, gt=0, description="grpo: > 1 discourages repeats in the generations")
    log_completions: bool = Field(False, description="grpo: log sampled completions with their rewards")
    max_prompt_length: int | None = Field(None, ge=1, description="accepted for ms-swift command lines; TRL 1.x trainers bound prompt + answer by --max_length only")
    use_vllm: bool = Field(False, description="grpo: generate with vLLM (must be installed)")

    @field_validator("loss_type", "reward_funcs", mode="before")
    @classmethod
    def _string_lists(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("rlhf_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _method_checks(self) -> "RlhfArguments":
        fields = type(self).model_fields
        given = [f for f in SFT_ONLY if f in fields and getattr(self, f) != fields[f].get_default(call_default_factory=True)]
        if given:
            raise ValueError(f"{given[0]} is an sft switch; rlhf runs its losses in TRL's trainers")
        if not self.dataset:
            raise ValueError("dataset: required (preference rows: messages + rejected_response, prompt/chosen/rejected, ...)")
        if self.rlhf_type == "grpo" and not self.reward_funcs:
            raise ValueError("reward_funcs: grpo needs at least one reward function (swiftune list rewards)")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(f"reward_weights: {len(self.reward_weights)} weight(s) for {len(self.reward_funcs)} reward function(s)")
        if self.rpo_alpha is not None and self.rlhf_type != "dpo":
            raise ValueError(f"rpo_alpha applies to dpo, not {self.rlhf_type}")
        return self

    def method_beta(self) -> float | None:
        """``beta`` as given, else SimPO's usual 2.0, else None (TRL's default for the method)."""
        if self.beta is not None:
            return self.beta
        return 2.0 if self.rlhf_type == "simpo" else None
