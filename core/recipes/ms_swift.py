"""Reading a checkpoint folder that ms-swift wrote, so ``infer`` and ``export`` take it as it is.

ms-swift saves a LoRA checkpoint (``output/v0-<time>/checkpoint-N/``) as PEFT's adapter files
(``adapter_config.json``, ``adapter_model.safetensors``) next to its ``args.json``: the training
arguments, among them ``model`` (hub id or path), ``model_dir`` (where the weights were on the
training machine), ``template``, ``system`` and the tuning method (``train_type``, ``tuner_type``
in ms-swift 4). This module turns that ``args.json`` into the keys swiftune's own run file uses
(``model``, ``template``, ``system``, ``tuner``); the adapter files load through the PEFT reader.
Nothing else in the folder (optimizer and RNG pickles, ``training_args.bin``) is ever opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .aliases import template_name
from ..errors import ConfigError

#: Keys only ms-swift's args.json has (swiftune's has "swiftune_version").
_MS_SWIFT_KEYS = ("train_type", "tuner_type", "model_type", "model_dir", "tuner_backend")


def is_ms_swift_run(run_args: Mapping[str, Any]) -> bool:
    return "swiftune_version" not in run_args and any(k in run_args for k in _MS_SWIFT_KEYS)


def read_run_args(run_args: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """swiftune's view of an ms-swift ``args.json`` (a swiftune one is returned unchanged)."""
    if not is_ms_swift_run(run_args):
        return dict(run_args)
    tuner = str(run_args.get("tuner_type") or run_args.get("train_type") or "lora").lower()
    model = run_args.get("model")
    model_dir = run_args.get("model_dir")
    if model_dir and Path(str(model_dir)).expanduser().is_dir():
        model = str(model_dir)  # the weights ms-swift trained on, when they are on this machine
    out = {
        "model": model,
        "template": template_name(run_args.get("template")),
        "system": run_args.get("system"),
        "tuner": "qlora" if tuner == "lora" and run_args.get("quant_bits") else tuner,
        "trained_by": "ms-swift",
        "args_file": str(where),
    }
    return {k: v for k, v in out.items() if v is not None}


def check_adapter_folder(path: Path, run_args: Mapping[str, Any]) -> None:
    """A full fine-tuning checkpoint of ms-swift is a model, not an adapter: say how to use it."""
    if is_ms_swift_run(run_args) and str(run_args.get("tuner_type") or run_args.get("train_type")).lower() == "full":
        raise ConfigError(f"--adapter: {path} is an ms-swift full fine-tuning checkpoint (a whole model, no adapter): "
                          f"pass it as --model {path}")
