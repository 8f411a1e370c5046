"""diffusers' LoRA file <-> swiftune's adapter folder, for a ``DenoiserLoss`` (``unet`` / ``text_encoder``).

diffusers keeps a pipeline's LoRA in ``pytorch_lora_weights.safetensors`` with PEFT's key names under
the component's prefix (``unet.<module>.lora_A.weight``) and each component's ``LoraConfig`` in the
safetensors metadata (``lora_adapter_metadata``: JSON with keys ``unet.r``, ``unet.lora_alpha``, ...),
so ``pipe.load_lora_weights(folder)`` rebuilds the rank and alpha exactly. swiftune's adapter of the
same LoRA is PEFT's layout of the whole ``DenoiserLoss`` (``base_model.model.unet.<module>...``):
the two differ by that key prefix and by where the config lives.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
METADATA_KEY = "lora_adapter_metadata"
COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")
_PEFT_PREFIX = "base_model.model."
#: LoraConfig fields diffusers' metadata carries (the rest of swiftune's config is bookkeeping).
_CONFIG_FIELDS = ("r", "lora_alpha", "lora_dropout", "use_rslora", "use_dora", "init_lora_weights")


def _module_of(key: str) -> str:
    """``unet.a.b.lora_A.weight`` -> ``unet.a.b`` (also DoRA's ``lora_magnitude_vector``)."""
    for marker in (".lora_A.", ".lora_B.", ".lora_magnitude_vector"):
        if marker in key:
            return key.split(marker)[0]
    return key.rsplit(".", 1)[0]


def write_diffusers_lora(config: dict[str, Any], weights: dict[str, torch.Tensor], folder: Path) -> Path | None:
    """Write the LoRA of a swiftune adapter (its disk config and PEFT-layout weights) as diffusers'
    ``pytorch_lora_weights.safetensors`` in ``folder``; None when the adapter is not a plain LoRA."""
    from safetensors.torch import save_file

    if config.get("tuner") != "lora" or config.get("bias", "none") != "none" or config.get("modules_to_save"):
        return None
    tensors: dict[str, torch.Tensor] = {}
    targets: dict[str, set[str]] = {c: set() for c in COMPONENTS}
    for key, value in weights.items():
        name = key.removeprefix(_PEFT_PREFIX)
        component = name.split(".", 1)[0]
        if component not in COMPONENTS:
            return None
        tensors[name] = value.detach().to("cpu").contiguous()
        targets[component].add(_module_of(name).split(".", 1)[1])
    metadata: dict[str, Any] = {}
    for component, modules in targets.items():
        if modules:
            settings = {k: config[k] for k in _CONFIG_FIELDS if k in config}
            settings["init_lora_weights"] = True  # the weights are given; PEFT only checks the field
            settings["target_modules"] = sorted(modules)
            metadata.update({f"{component}.{k}": v for k, v in settings.items()})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHT_NAME
    save_file(tensors, str(path), metadata={"format": "pt", METADATA_KEY: json.dumps(metadata, indent=2, sort_keys=True)})
    return path


def write_diffusers_lora_of(folder: Path) -> Path | None:
    """diffusers' file beside the swiftune adapter saved in ``folder``, when it is a plain LoRA."""
    from ..serialization import read_adapter_config, read_adapter_weights

    if not (folder / "adapter_config.json").is_file():
        return None
    config = read_adapter_config(folder)
    if config.get("tuner") != "lora":
        return None
    return write_diffusers_lora(config, read_adapter_weights(folder), folder)


def read_diffusers_lora(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors with PEFT key names under ``unet.`` / ``text_encoder.``, one LoRA config) of a diffusers
    LoRA file; the rank and alpha come from its metadata, else from the shapes (alpha = rank, as diffusers)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        metadata = json.loads((fh.metadata() or {}).get(METADATA_KEY) or "{}")
        raw = {k: fh.get_tensor(k) for k in fh.keys()}
    tensors: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        name = key.replace(".lora.down.", ".lora_A.").replace(".lora.up.", ".lora_B.")
        component = name.split(".", 1)[0]
        if component not in COMPONENTS or ".alpha" in name and not name.endswith(".weight"):
            raise ConfigError(f"{path}: key '{key}' is not a Stable Diffusion LoRA key of diffusers' layout "
                              f"({', '.join(c + '.<module>.lora_A.weight' for c in COMPONENTS)}); load it with diffusers "
                              "and save it again with pipe.save_lora_weights")
        tensors[name] = value
    if not tensors:
        raise ConfigError(f"{path}: holds no LoRA weights")
    configs = []
    for component in COMPONENTS:
        ranks = Counter(v.shape[0] for k, v in tensors.items() if k.startswith(f"{component}.") and ".lora_A." in k)
        if not ranks:
            continue
        if len(ranks) > 1:
            raise ConfigError(f"{path}: the {component} LoRA has several ranks {sorted(ranks)}; swiftune's LoRA has one rank per adapter")
        rank = next(iter(ranks))
        found = {k.split(".", 1)[1]: v for k, v in metadata.items() if k.startswith(f"{component}.")}
        patterns = [k for k in ("rank_pattern", "alpha_pattern") if found.get(k)]
        if patterns:
            raise ConfigError(f"{path}: the {component} LoRA sets {' and '.join(patterns)} (ranks / alphas per module); "
                              "swiftune's LoRA has one rank and alpha per adapter")
        configs.append({"r": int(found.get("r", rank)), "lora_alpha": found.get("lora_alpha", found.get("r", rank)),
                        "use_dora": bool(found.get("use_dora", False)), "use_rslora": bool(found.get("use_rslora", False))})
    if any(c != configs[0] for c in configs[1:]):
        raise ConfigError(f"{path}: the UNet and text-encoder LoRAs differ in rank / alpha ({configs}); "
                          "swiftune loads one LoRA config per adapter")
    modules = sorted({_module_of(k) for k in tensors})
    config = {"tuner": "lora", **configs[0], "target_modules": [m.replace(".", r"\.") for m in modules]}
    config["target_modules"] = "|".join(config["target_modules"])  # full names, as one regex
    return tensors, config


def diffusers_to_adapter_folder(path: Path, folder: Path) -> Path:
    """Write a diffusers LoRA file as a swiftune adapter folder of a ``DenoiserLoss`` (PEFT's layout)."""
    from safetensors.torch import save_file

    from ..config_dispatch import parse_config
    from ..serialization import write_adapter_config

    tensors, config = read_diffusers_lora(path)
    folder.mkdir(parents=True, exist_ok=True)
    write_adapter_config(folder, parse_config(config).to_disk_dict())
    save_file({_PEFT_PREFIX + k: v.contiguous() for k, v in tensors.items()}, str(folder / "adapter_model.safetensors"))
    return folder
