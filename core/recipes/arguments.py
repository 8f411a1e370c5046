"""The arguments of ``sft``, ``infer`` and ``export``: one pydantic model per command.

The same model is filled from flags (kebab-case of the field names), from a YAML file and from
Python keyword arguments, so all three are validated by one rule. Field names follow the
transformers ``TrainingArguments`` where the idea is the same. The chosen tuner's own config
fields travel in ``tuner_args`` (a YAML mapping of that name; plain flags such as ``--r 16`` on the
command line) and are validated by the tuner's ``TunerConfig``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ``swiftune sft`` with no arguments trains the default tuner on the default model and dataset: the
# registrations their plugins mark ``default_of_kind`` (``swiftune.plugin_defaults``), read when an
# arguments object is built, not at import (the module names no plugin and loads none).
_LAZY_DEFAULTS = {"DEFAULT_MODEL": "default_model", "DEFAULT_DATASET": "default_dataset", "DEFAULT_TUNER": "default_tuner"}


def __getattr__(name: str) -> Any:
    """``DEFAULT_MODEL`` / ``DEFAULT_DATASET`` / ``DEFAULT_TUNER``: the installed plugins' defaults.

    ``COMMANDS`` lives in ``commands`` (it names rlhf's arguments, which extend sft's defined here);
    this keeps ``from swiftune.recipes.arguments import COMMANDS`` working."""
    if name == "COMMANDS":
        from .commands import COMMANDS

        return COMMANDS
    if name not in _LAZY_DEFAULTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .. import plugin_defaults

    return getattr(plugin_defaults, _LAZY_DEFAULTS[name])()


def _default(what: str) -> Any:
    return lambda: __getattr__(what)


Precision = Literal["auto", "fp32", "bf16", "fp16"]
SftTask = Literal["causal-lm", "text-to-image", "image-classification"]
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class CommandArguments(BaseModel):
    """Shared settings: unknown fields are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    trust_remote_code: bool = Field(False, description="allow Python code shipped with a model, checkpoint, adapter's base or dataset to run (read it first; also SWIFTUNE_TRUST_REMOTE_CODE=1)")

    def allows_remote_code(self) -> bool | None:
        """True when the flag was given; None lets ``SWIFTUNE_TRUST_REMOTE_CODE`` decide."""
        return True if self.trust_remote_code else None

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _as_list(value: Any) -> Any:
    """A single string where a list is expected (``adapter="out"``) is a list of one."""
    return [value] if isinstance(value, str) else value


class SftArguments(CommandArguments):
    """``swiftune sft``: supervised fine-tuning of a model with one tuner on the Trainer."""

    # -- model and data -------------------------------------------------------------------------
    task: SftTask = Field("causal-lm", description="causal-lm (chat / text), text-to-image (a Stable Diffusion pipeline folder; image + caption rows) or image-classification (ViT / Swin; an image folder of class subfolders or image + label rows)")
    model: str = Field(default_factory=_default("DEFAULT_MODEL"), description="local folder, Hugging Face id, ms::ModelScope id, .gguf file or registered model name")
    template: str | None = Field(None, description="chat template name (default: the model family's)")
    dataset: list[str] = Field(default_factory=lambda: [__getattr__("DEFAULT_DATASET")], description="name_or_path[:split][#N]; repeatable")
    val_dataset: list[str] = Field(default_factory=list, description="evaluation data (default: a val_ratio split of --dataset)")
    val_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="fraction of the training rows held out for eval loss")
    skip_bad_rows: bool = Field(False, description="drop rows that do not convert instead of failing")
    system: str | None = Field(None, description="system prompt of every training example that has none")
    model_name: list[str] = Field(default_factory=list, max_length=2, description="self-cognition data (swift/self-cognition): the model's name; two values: English and Chinese (a value in Chinese script goes to the Chinese rows)")
    model_author: list[str] = Field(default_factory=list, max_length=2, description="self-cognition data: who made the model; two values as for --model-name")
    max_length: int = Field(1024, ge=8, description="maximum tokens per example")
    truncation: Literal["right", "left", "drop"] = Field("right", description="what to do with longer examples")
    packing: bool = Field(False, description="concatenate examples into max_length blocks")
    padding_free: bool | None = Field(None, description="put a micro-batch's examples in one row without padding, kept apart by restarting positions (default: on when a check at start shows the model keeps them apart)")
    answer_logits_only: bool = Field(True, description="compute the LM head's logits only at positions with a trained label (the same loss, less work)")
    fused_head_loss: bool = Field(True, description="compute the LM head and the loss together a few rows at a time, without the full logits tensor (the same loss, less memory and time)")
    compile: bool = Field(False, description="torch.compile each transformer block (one compile serves all; tens of seconds up front, faster steps after)")
    cast_frozen_weights: bool = Field(True, description="under bf16/fp16 autocast, store frozen Linear weights in that dtype (the same results without a cast per step; half their memory)")

    # -- images (text-to-image, image-classification) --------------------------------------------
    resolution: int | None = Field(None, ge=8, description="text-to-image: training image size in pixels (default: the pipeline's, UNet sample size x VAE scale)")
    center_crop: bool = Field(True, description="text-to-image: crop the middle of each resized image (false: a random crop)")
    random_flip: bool = Field(False, description="text-to-image: flip training images left-right at random")
    train_text_encoder: bool = Field(False, description="text-to-image: also put the tuner on the text encoder (q/k/v/out projections)")

    # -- vision-language models (Qwen2-VL, LLaVA; ms-swift's names) -------------------------------
    freeze_vit: bool = Field(True, description="vision-language models: keep the vision tower out of the tuner (false: LoRA etc. cover it too, or --tuner full trains it)")
    freeze_aligner: bool = Field(True, description="vision-language models: keep the projector between vision tower and language model (Qwen2-VL's merger, LLaVA's multi_modal_projector) out of the tuner")
    max_pixels: int | None = Field(None, ge=1, description="Qwen2-VL / Qwen2.5-VL: resize larger images down to at most this many pixels (default: the model's preprocessor_config.json); infer reuses the run's")

    # -- tuner ----------------------------------------------------------------------------------
    tuner: str = Field(default_factory=_default("DEFAULT_TUNER"), description="registered tuner name (swiftune list tuners)")
    tuner_args: dict[str, Any] = Field(default_factory=dict, description="fields of the tuner's config")
    lorap_lr_ratio: float | None = Field(None, gt=0, description="LoRA+: the LoRA B matrices (and DoRA magnitudes) train at learning_rate times this (e.g. 16); embedding LoRA at 1e-6, as PEFT")
    adapter_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="dtype of the weights the tuner adds (auto: float32 on a bf16/fp16 model, so small updates are not rounded away; else the model's dtype)")

    # -- training (TrainingArguments names) -----------------------------------------------------
    output_dir: str | None = Field(None, description="run folder (default: output/<model>-<tuner>-<time>)")
    overwrite_output_dir: bool = Field(False, description="start afresh in an output dir that holds checkpoints")
    resume: bool | str = Field(False, description="continue from the newest checkpoint of output_dir, or from this checkpoint folder")
    num_train_epochs: float = Field(1.0, gt=0, description="passes over the training data")
    max_steps: int = Field(-1, description="optimizer steps; overrides num_train_epochs when > 0")
    per_device_train_batch_size: int = Field(2, ge=1, description="examples per device and micro-batch")
    per_device_eval_batch_size: int | None = Field(None, ge=1, description="default: the train batch size")
    gradient_accumulation_steps: int = Field(4, ge=1, description="micro-batches per optimizer step")
    learning_rate: float = Field(5e-4, gt=0, description="peak learning rate (default: 5e-4 for LoRA-family tuners, whose lora_alpha is 32 in sft; 1e-3 for other tuners, scaled up for prompt (3e-2) and prefix (1e-2); 1e-4 to 2e-4 suit billion-parameter models)")
    lr_scheduler_type: str = Field("cosine", description="linear, cosine, constant, constant_with_warmup, ...")
    warmup_steps: float = Field(0.0, ge=0, description="warmup steps, or a fraction of all steps when < 1 (a warmup's first step runs at learning rate 0)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping norm (0: off)")
    optim: str = Field("adamw_torch", description="Trainer optimizer name")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    precision: Precision = Field("auto", description="auto: bf16 autocast where the hardware has it, else fp32")
    logging_steps: float = Field(0.02, gt=0, description="log every N optimizer steps, or a fraction of all steps when < 1 (the default: about 50 points a run, every step in a short one)")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (default: save_steps)")
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps")
    save_total_limit: int | None = Field(2, ge=1, description="keep at most N checkpoints")
    seed: int = Field(42, description="seed of weights init, data order and dropout")
    report_to: list[str] = Field(default_factory=list, description="tensorboard, wandb, ...; repeatable")
    dataloader_num_workers: int = Field(0, ge=0, description="data loading worker processes")

    # -- distributed (passed through to the Trainer) ---------------------------------------------
    ddp_backend: str | None = Field(None, description="gloo, nccl, ... (default: the Trainer's choice)")
    fsdp: str | None = Field(None, description="FSDP options, e.g. 'full_shard auto_wrap'")
    fsdp_config: str | None = Field(None, description="FSDP config file (JSON)")
    deepspeed: str | None = Field(None, description="DeepSpeed: a preset (zero2, zero3, zero2_offload, zero3_offload) or a config file (JSON)")

    @field_validator("dataset", "val_dataset", "report_to", "model_name", "model_author", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("resume", mode="before")
    @classmethod
    def _resume_flag(cls, value: Any) -> Any:
        """``--resume`` alone (or true / false in YAML) is a switch; any other string is a folder."""
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        return value

    @field_validator("tuner_args", mode="before")
    @classmethod
    def _no_tuner_key(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = {str(k).replace("-", "_"): v for k, v in value.items() if k != "tuner"}
        return value

    def tuner_config(self):  # -> TunerConfig; torch-free import path kept for the CLI help
        """The validated config of the chosen tuner (errors name the tuner and the field).

        A tuner field named like a command field (qlora's ``gradient_checkpointing``) takes the
        command's value when it was given and ``tuner_args`` does not set it: one idea, one flag.
        """
        from .. import registries
        from ..config_dispatch import parse_config

        from .sft_defaults import tuner_defaults

        fields = registries.tuners.get(self.tuner).config_class.model_fields
        shared = {k: getattr(self, k) for k in self.model_fields_set & set(fields)
                  if k not in self.tuner_args and k not in ("tuner", "tuner_args")}
        recipe = tuner_defaults(fields, {**shared, **self.tuner_args}, type(self))
        return parse_config({**recipe, **shared, **self.tuner_args, "tuner": self.tuner})


class GenerationArguments(CommandArguments):
    """Sampling settings shared by chat and batch inference."""

    max_new_tokens: int = Field(256, ge=1, description="tokens generated per answer")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(0.7, ge=0, description="sampling temperature (with --do-sample; 0: greedy)")
    top_p: float = Field(0.9, gt=0, le=1, description="nucleus sampling mass (with --do-sample)")
    top_k: int | None = Field(None, ge=1, description="sample among the k likeliest tokens (with --do-sample)")
    repetition_penalty: float = Field(1.0, gt=0, description="> 1 discourages repeats")
    seed: int = Field(42, description="seed for sampling")


class InferArguments(GenerationArguments):
    """``swiftune infer``: chat with, or batch-generate from, a model and its adapters."""

    adapter: list[str] = Field(default_factory=list, description="adapter folder or sft output dir; repeatable")
    model: str | None = Field(None, description="base model (default: the one in the adapter's args.json)")
    template: str | None = Field(None, description="chat template (default: from args.json or the model family)")
    precision: Precision = Field("auto", description="auto: the model's dtype on GPU, fp32 on CPU")
    merge: bool = Field(False, description="merge the adapters into the weights before generating")
    system: str | None = Field(None, description="system prompt")
    input: str | None = Field(None, description="batch mode: a jsonl file or any dataset spec the registry reads")
    output: str | None = Field(None, description="batch mode: where to write the rows with their 'response'")
    skip_bad_rows: bool = Field(False, description="batch mode: skip input rows that cannot be read or converted (they are reported) instead of failing")
    batch_size: int = Field(8, ge=1, description="prompts generated together in batch mode")
    max_length: int = Field(2048, ge=8, description="prompt tokens kept (the history is cut from the front)")
    stream: bool = Field(True, description="print chat tokens as they are generated")
    images: list[str] = Field(default_factory=list, description="vision-language models, chat: image files that go with the first message (where its <image> tags are, else in front)")
    max_pixels: int | None = Field(None, ge=1, description="Qwen2-VL / Qwen2.5-VL: resize larger images down to at most this many pixels (default: the sft run's, else the model's)")
    task: Literal["causal-lm", "text-to-image"] = Field("causal-lm", description="text-to-image: draw --prompt with a Stable Diffusion pipeline (--model) and its adapter into the image file --output")
    prompt: str | None = Field(None, description="text-to-image: what to draw")
    negative_prompt: str | None = Field(None, description="text-to-image: what to steer away from")
    num_inference_steps: int = Field(30, ge=1, description="text-to-image: denoising steps")
    guidance_scale: float = Field(7.5, ge=0, description="text-to-image: classifier-free guidance strength (1: off)")

    @field_validator("adapter", "images", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)


class ExportArguments(CommandArguments):
    """``swiftune export``: merge adapters into the base weights and save a plain transformers model."""

    adapter: list[str] = Field(default_factory=list, description="adapter folder or sft output dir; repeatable")
    output: str | None = Field(None, description="folder for the merged model and its tokenizer (default: the first adapter's folder name + '-merged', as ms-swift names it)")
    model: str | None = Field(None, description="base model (default: the one in the adapter's args.json)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="dtype of the saved weights (auto: as loaded)")
    overwrite: bool = Field(False, description="replace an existing output folder")

    @field_validator("adapter", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)


class DeployArguments(CommandArguments):
    """``swiftune deploy``: an OpenAI-compatible HTTP server; the request's ``model`` picks the adapter."""

    model: str | None = Field(None, description="base model (default: the one in the first adapter's args.json)")
    adapters: list[str] = Field(default_factory=list, description="name=path (or a path, named after its folder); repeatable")
    template: str | None = Field(None, description="chat template (default: from args.json or the model family)")
    system: str | None = Field(None, description="system prompt for chats that send none")
    served_model_name: str | None = Field(None, description="the base model's name in /v1/models and requests (default: its folder name)")
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    api_key: str | None = Field(None, description="require 'Authorization: Bearer KEY' on every request")
    infer_backend: str = Field("transformers", description="generation engine: transformers (ms-swift's 'pt' too), or vllm where installed")
    precision: Precision = Field("auto", description="auto: the model's dtype on GPU, fp32 on CPU")
    max_batch_size: int = Field(8, ge=1, description="requests generated together in one batch")
    max_queue: int = Field(64, ge=1, description="requests waiting at most; more are answered 429")
    batch_wait_ms: float = Field(25.0, ge=0, description="how long a batch waits for more requests to join it (clients answered together come back together)")
    max_model_len: int | None = Field(None, ge=8, description="prompt + answer tokens per request (default: the model's context)")
    max_new_tokens: int = Field(512, ge=1, description="answer tokens when a request sets no max_tokens")
    temperature: float = Field(0.0, ge=0, description="for requests that set none (0: greedy)")
    top_p: float = Field(1.0, gt=0, le=1, description="for requests that set none")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="uvicorn's log level")

    @field_validator("adapters", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)


class EvalArguments(CommandArguments):
    """``swiftune eval``: score the base model and each adapter on the same data."""

    model: str | None = Field(None, description="base model (default: the one in the first adapter's args.json)")
    adapters: list[str] = Field(default_factory=list, description="name=path (or a path, named after its folder); repeatable")
    eval_dataset: list[str] = Field(default_factory=list, description="name_or_path[:split][#N]: chat rows with answers, multiple-choice rows or text; repeatable")
    eval_limit: int | None = Field(None, ge=1, description="score at most N examples per dataset")
    eval_backend: Literal["native", "lm_eval"] = Field("native", description="native, or lm_eval (lm-evaluation-harness, when installed)")
    tasks: list[str] = Field(default_factory=list, description="lm_eval: the harness's task names; repeatable")
    skip_base: bool = Field(False, description="do not score the base model alone")
    template: str | None = Field(None, description="chat template (default: from args.json or the model family)")
    answer_regex: str | None = Field(None, description="compare what this regex extracts (its first group) from answer and reference")
    max_new_tokens: int = Field(64, ge=1, description="tokens generated per answer (greedy)")
    max_length: int = Field(2048, ge=8, description="prompt tokens kept")
    batch_size: int = Field(8, ge=1, description="prompts generated together")
    precision: Precision = Field("auto", description="auto: the model's dtype on GPU, fp32 on CPU")
    result_path: str | None = Field(None, description="results JSON (default: eval_output/eval-<time>.json)")
    skip_bad_rows: bool = Field(False, description="drop rows that do not convert instead of failing")
    seed: int = Field(42, description="seed of the data order")

    @field_validator("adapters", "eval_dataset", "tasks", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)
