"""``swiftune export``: fold the adapters into the base weights and save a plain transformers model.

The result (safetensors weights, config, generation config, tokenizer) loads with
``AutoModelForCausalLM.from_pretrained`` alone and gives the adapter model's logits. It is written
into a temporary sibling folder and renamed into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from ..files import naming_file, usual_permissions
from .arguments import ExportArguments
from .run_folder import check_output_apart, folders_read

EXPORT_INFO = "swiftune_export.json"


def merged_name(adapter: str) -> Path:
    """The export folder when none is given: ``<adapter>-merged`` beside it (ms-swift's name), or
    beside the run folder for a checkpoint inside one (``run/checkpoint-50`` -> ``run-checkpoint-50-merged``),
    since nothing is written into a folder being read."""
    path = Path(adapter).expanduser().resolve()
    if (path.parent / "args.json").is_file():
        return path.parent.with_name(f"{path.parent.name}-{path.name}-merged")
    return path.with_name(f"{path.name}-merged")


def run_export(args: ExportArguments) -> Path:
    import torch

    from .rebuild import rebuild
    from .runtime import quiet_libraries
    from .trainer import publish

    quiet_libraries()
    if not args.adapter:
        raise ConfigError("--adapter: required (an adapter folder or sft output folder; repeatable)")
    output = Path(args.output).expanduser() if args.output else merged_name(args.adapter[0])
    # Never over, into or around what is read: --overwrite would delete the adapters being merged.
    check_output_apart(output, folders_read(args.adapter, args.model))
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise ConfigError(f"--output: {output} exists and is not empty; pass --overwrite to replace it")

    built = rebuild(args.adapter, model=args.model, trust_remote_code=args.allows_remote_code())
    merged = built.model.merge_and_unload()
    if args.dtype != "auto":
        merged = merged.to(getattr(torch, args.dtype))

    output.parent.mkdir(parents=True, exist_ok=True)
    staged = output.parent / f".{output.name}.export-{os.getpid()}"
    if staged.exists():
        shutil.rmtree(staged)
    try:
        with naming_file(staged, "write the merged model"):  # safetensors' errors name no file
            merged.save_pretrained(staged)
            built.tokenizer.save_pretrained(staged)
        usual_permissions(staged)  # model.safetensors comes out 0600, its JSON files 0644
        info = {"swiftune_version": __version__, "base_model": built.base,
                "adapters": {n: str(p.resolve()) for n, p in built.adapters.items()}}
        (staged / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        publish(staged, output)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    print(f"merged model written to {output}")
    return output
