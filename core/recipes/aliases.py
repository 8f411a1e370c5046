"""ms-swift's argument names, kept as data so scripts written for ms-swift run unchanged.

Three tables, read by the argument router (``argument_sources.py``, the CLI's flags too) and checked against the migration guide
(docs/migrating-from-ms-swift.md) by a test:

* ``ALIASES``: an ms-swift name for a swiftune field (``--lora_rank`` is lora's ``--r``), with a
  value conversion where the spelling of values differs (``--torch_dtype bfloat16`` is
  ``--precision bf16``). An alias has candidate targets; the first one the command (or its tuner)
  has is used, so one ms-swift name serves several commands (``--output_dir`` is export's
  ``--output``). Where the command has a field of that very name, the field wins.
* ``ACCEPTED``: ms-swift flags whose only meaningful values describe what swiftune always does
  (``--infer_backend transformers``, export's ``--merge_lora true``); other values are errors that
  say what is supported.
* ``UNSUPPORTED``: ms-swift flags without an equivalent yet, each with the reason, so the user
  reads "an ms-swift flag swiftune does not support yet" instead of a fuzzy guess.

Names are stored in snake_case; on the command line both spellings work.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def normalize(name: str) -> str:
    """``--Learning-Rate`` / ``learning_rate`` -> ``learning_rate`` (the key every table uses)."""
    return name.lstrip("-").replace("-", "_").lower()


def as_bool(value: Any) -> bool | None:
    """``True`` / ``"yes"`` / ``1`` -> True; ``"false"`` / ``0`` -> False; anything else None."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


# -- value conversions ----------------------------------------------------------------------------
_PRECISION = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16", "half": "fp16",
              "float32": "fp32", "fp32": "fp32", "float": "fp32", "auto": "auto"}


def _precision(value: Any) -> Any:
    return _PRECISION.get(str(value).lower(), value)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _init_weights(value: Any) -> Any:
    """ms-swift passes ``true`` / ``false`` as words; LoRA's field takes booleans or method names."""
    flag = as_bool(value)
    return flag if flag is not None else _lower(value)


def _warmup_ratio(value: Any) -> Any:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        return value  # the field's own validation names the bad value
    if not 0 <= ratio < 1:
        raise ConfigError(f"--warmup-ratio: a fraction of the training steps in [0, 1) (got {value!r})")
    return ratio


def _batch_size(value: Any) -> Any:
    """ms-swift's ``--max_batch_size -1`` means no limit: every prompt in one batch."""
    return 1 << 30 if str(value).strip() == "-1" else value


def _half(precision: str) -> Callable[[Any], Any]:
    """``--bf16 true`` is ``--precision bf16``; ``false`` is fp32."""
    def convert(value: Any) -> Any:
        flag = as_bool(value)
        return value if flag is None else precision if flag else "fp32"
    return convert


def _truncation(value: Any) -> Any:
    return "drop" if str(value).lower() == "delete" else value


@dataclass(frozen=True)
class Target:
    """One swiftune field an alias may stand for, and how its value is spelled there."""

    field: str
    convert: Callable[[Any], Any] | None = None
    #: Only for a command that also has this field (export's --output is not infer's --output).
    when: str = ""


@dataclass(frozen=True)
class Alias:
    name: str
    targets: tuple[Target, ...]
    note: str = ""
    #: A yes/no flag of ms-swift (``--bf16``, ``--bf16 true``) whose target is not a boolean.
    switch: bool = False


ALIASES: tuple[Alias, ...] = (
    Alias("tuner_type", (Target("tuner", _lower),), "ms-swift 4's name of the tuning method"),
    Alias("train_type", (Target("tuner", _lower),), "ms-swift 3's name of the tuning method"),
    Alias("lora_rank", (Target("r"),)),
    Alias("lora_bias", (Target("bias"),)),
    Alias("lora_dtype", (Target("adapter_dtype"),), "dtype of the adapter weights"),
    Alias("init_weights", (Target("init_lora_weights", _init_weights),), "true / false / gaussian / pissa / olora"),
    Alias("torch_dtype", (Target("precision", _precision), Target("dtype")),
          "sft / infer: bfloat16 -> bf16, float16 -> fp16, float32 -> fp32; export: the saved dtype"),
    Alias("split_dataset_ratio", (Target("val_ratio"),)),
    Alias("warmup_ratio", (Target("warmup_steps", _warmup_ratio),), "swiftune's --warmup-steps below 1 is a fraction"),
    Alias("resume_from_checkpoint", (Target("resume"),)),
    Alias("quant_bits", (Target("bits"),), "4 or 8; selects the qlora tuner (bitsandbytes)"),
    Alias("bf16", (Target("precision", _half("bf16")),), "true -> --precision bf16", switch=True),
    Alias("fp16", (Target("precision", _half("fp16")),), "true -> --precision fp16", switch=True),
    Alias("truncation_strategy", (Target("truncation", _truncation),), "delete -> drop; left, right"),
    Alias("adapters", (Target("adapter"),)),
    Alias("val_dataset", (Target("input"),), "infer: the prompts of batch mode"),
    Alias("result_path", (Target("output", when="input"),), "infer: batch mode's result file"),
    Alias("output_dir", (Target("output", when="overwrite"),), "export: the merged model's folder"),
    Alias("max_batch_size", (Target("batch_size", _batch_size),), "-1: all prompts at once"),
    Alias("merge_lora", (Target("merge"),), "infer: merge before generating"),
    Alias("exist_ok", (Target("overwrite"),), "export: replace an existing output folder"),
)


@dataclass(frozen=True)
class Accepted:
    """An ms-swift flag whose supported values describe what swiftune always does."""

    name: str
    values: tuple[str, ...]
    note: str
    #: Only in these commands' argument models (by a field they have); empty: any command.
    when_field: str = ""


#: Generation engines other than transformers that ms-swift users may name.
OTHER_BACKENDS = ("vllm", "sglang", "lmdeploy")


def installed_backends() -> list[str]:
    return [b for b in OTHER_BACKENDS if importlib.util.find_spec(b) is not None]


def backends_here() -> str:
    """Which other engines are installed, as an error message says it."""
    installed = installed_backends()
    return f"installed here: {', '.join(installed)}" if installed else f"none of {', '.join(OTHER_BACKENDS)} is installed here"


def _backends_message(value: str) -> str:
    have = backends_here()
    return (f"--infer-backend {value}: this command generates with transformers only (supported: transformers, pt); "
            f"{have} (swiftune deploy --infer_backend vllm serves with vLLM where it is installed)")


ACCEPTED: tuple[Accepted, ...] = (
    Accepted("infer_backend", ("transformers", "pt"), "swiftune generates with transformers", when_field="max_new_tokens"),
    Accepted("merge_lora", ("true",), "export always merges (infer: --merge)", when_field="overwrite"),
    Accepted("quant_method", ("bnb",), "bitsandbytes, through the qlora tuner (with --quant_bits 4 or 8)",
             when_field="tuner"),
    Accepted("tuner_backend", ("peft",), "swiftune's tuners write PEFT's format", when_field="tuner"),
    Accepted("use_hf", ("true", "false"),
             "plain hub ids are read from the Hugging Face Hub; write ms::ID for ModelScope"),
    Accepted("save_strategy", ("steps",), "checkpoints every --save-steps", when_field="save_steps"),
    Accepted("eval_strategy", ("steps",), "evaluation every --eval-steps when there is eval data (--val-ratio 0: none)",
             when_field="save_steps"),
)

#: ms-swift flags with no swiftune equivalent yet, and why (or what to use instead).
UNSUPPORTED: Mapping[str, str] = {
    "model_type": "swiftune picks the model family from config.json (see swiftune list models)",
    "model_revision": "pin a revision by downloading it and passing the folder as --model",
    "attn_impl": "the model's default attention implementation is used",
    "add_version": "the run folder is --output-dir itself (no v0-<time> subfolder)",
    "streaming": "datasets are loaded in full",
    "dataset_num_proc": "tokenization runs in the main process",
    "load_from_cache_file": "tokenized data is not cached between runs",
    "lazy_tokenize": "data is tokenized before training",
    "dataset_shuffle": "training data is always shuffled with --seed",
    "data_seed": "--seed sets the data order too",
    "columns": "rename columns in the file, or register a DatasetEntry with columns",
    "custom_dataset_info": "register datasets through a plugin (docs/plugins.md)",
    "custom_register_path": "register models, templates and datasets through a plugin (docs/plugins.md)",
    "external_plugins": "plugins are installed packages with a 'swiftune' entry point (docs/plugins.md)",
    "save_only_model": "checkpoints always hold what --resume needs",
    "resume_only_model": "starting a new run from a checkpoint's weights alone is not supported yet",
    "freeze_llm": "the language model always takes the tuner (--freeze_vit / --freeze_aligner choose the rest)",
    "target_regex": "give the regex as --target_modules (a value with regex characters is a regex)",
    "loss_scale": "the loss covers the assistant turns",
    "neftune_noise_alpha": "NEFTune noise is not implemented",
    "use_liger_kernel": "swiftune fuses the LM head into the loss itself (--fused-head-loss)",
    "sequence_parallel_size": "sequence parallelism is not implemented",
    "agent_template": "tool-calling templates are not implemented",
    "hub_token": "log in with huggingface-cli / modelscope login instead",
    "push_to_hub": "upload the output folder with the hub's own client",
    "hub_model_id": "upload the output folder with the hub's own client",
    "ddp_timeout": "set it through accelerate / torchrun",
    "load_args": "infer and export always read the adapter's args.json",
    "load_data_args": "give the evaluation data to infer as --val_dataset",
    "max_model_len": "prompts are cut to --max-length tokens",
    "vllm_max_model_len": "vLLM is not supported (--infer_backend transformers)",
    "stop_words": "generation stops at the template's end-of-turn marker",
    "num_beams": "beam search is not supported",
    "quant_n_samples": "swift export's GPTQ / AWQ quantization is not supported",
    "to_ollama": "export writes a transformers folder only",
    "to_mcore": "Megatron is not supported",
    "deepspeed_autotp_size": "DeepSpeed tensor parallelism is not supported",
}


def lookup(name: str, fields: Iterable[str]) -> tuple[Alias, Target] | None:
    """The alias ``name`` stands for among ``fields`` (None: not an alias there)."""
    fields = set(fields)
    if name in fields:
        return None
    for alias in ALIASES:
        if alias.name == name:
            for target in alias.targets:
                if target.field in fields and (not target.when or target.when in fields):
                    return alias, target
            return None
    return None


def alias_targets(name: str) -> tuple[str, ...]:
    for alias in ALIASES:
        if alias.name == name:
            return tuple(t.field for t in alias.targets)
    return ()


def accepted(name: str, fields: Iterable[str]) -> Accepted | None:
    fields = set(fields)
    for entry in ACCEPTED:
        if entry.name == name and (not entry.when_field or entry.when_field in fields):
            return entry
    return None


def check_accepted(entry: Accepted, value: Any, flag: str) -> None:
    """Raise unless ``value`` is one of the values that describe what swiftune does anyway."""
    text = str(value).strip().lower()
    if entry.name == "infer_backend" and text not in entry.values:
        raise ConfigError(_backends_message(text))
    as_flag = as_bool(value)
    if all(v in ("true", "false") for v in entry.values) and as_flag is not None:
        text = "true" if as_flag else "false"
    if text not in entry.values:
        raise ConfigError(f"{flag} {value}: not supported by swiftune (supported: {', '.join(entry.values)}; {entry.note})")


def unsupported_message(name: str, flag: str) -> str | None:
    reason = UNSUPPORTED.get(name)
    if reason is None:
        return None
    return f"{flag} is an ms-swift flag swiftune does not support yet: {reason} (see docs/migrating-from-ms-swift.md)"


#: ms-swift template names -> registered templates that render the same text (names that are
#: the same in both, such as chatml, llama3, gemma, phi3, need no entry). qwen3: ChatML without a
#: default system prompt; swiftune inserts no <think> block.
TEMPLATES: Mapping[str, str] = {
    "qwen2": "qwen",
    "qwen3": "chatml",
    "qwen3_nothinking": "chatml",
    "llama": "llama2",
}


def template_name(name: str | None) -> str | None:
    """A registered template's name for ms-swift's ``name`` (unchanged when it is not an alias)."""
    return TEMPLATES.get(name.lower(), name) if isinstance(name, str) else name


# -- the tuner an ms-swift command line asks for ---------------------------------------------------
TUNER_KEYS = ("tuner", "tuner_type", "train_type")
QUANT_KEYS = ("quant_bits", "quant_method")


def choose_tuner(given: Mapping[str, Any], default: str) -> tuple[str, str | None]:
    """(tuner name, the key that chose it) from ``--tuner`` / ``--tuner_type`` / ``--train_type``
    and ms-swift's quantization flags: LoRA with ``--quant_bits`` is swiftune's ``qlora``."""
    key = next((k for k in TUNER_KEYS if given.get(k) is not None), None)
    name = str(given[key]).lower() if key else default
    quant = {k: given[k] for k in QUANT_KEYS if given.get(k) is not None}
    if not quant:
        return name, key
    method = str(quant.get("quant_method", "bnb")).lower()
    if method != "bnb":
        raise ConfigError(f"--quant-method {method}: swiftune quantizes the base with bitsandbytes only "
                          "(--quant_method bnb --quant_bits 4|8, i.e. --tuner qlora)")
    if "quant_bits" not in quant:
        raise ConfigError("--quant-method bnb: also give --quant_bits 4 or 8")
    if name in ("lora", "qlora"):
        return "qlora", "quant_bits"
    raise ConfigError(f"--quant-bits: swiftune trains a quantized base with LoRA only (--tuner qlora); "
                      f"the tuner here is '{name}'")
