"""``swiftune.sft`` / ``infer`` / ``export``: the recipes called from Python and from the CLI.

Each takes its argument model (``SftArguments`` ...), a mapping or a YAML path, plus keyword
overrides, exactly as the command line does: ``swiftune.sft("run.yaml", learning_rate=2e-4)``.
They live here, not in the package's ``__init__``: the recipe modules are named ``sft``,
``infer`` and ``export`` too, and importing one of them would replace a function of that name
on the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .argument_sources import from_python
from .arguments import DeployArguments, EvalArguments, ExportArguments, InferArguments, SftArguments
from .rlhf_arguments import RlhfArguments

__all__ = ["sft", "infer", "export", "deploy", "rlhf", "evaluate"]


def sft(config: SftArguments | Mapping[str, Any] | str | Path | None = None, **kwargs: Any):
    """Fine-tune; returns an ``SftResult`` (output dir, final adapter, last metrics)."""
    from .sft import run_sft

    return run_sft(from_python(SftArguments, config, **kwargs))


def infer(config: InferArguments | Mapping[str, Any] | str | Path | None = None, **kwargs: Any):
    """Batch generation with ``input``/``output``; an interactive chat otherwise."""
    from .infer import run_infer

    return run_infer(from_python(InferArguments, config, **kwargs))


def export(config: ExportArguments | Mapping[str, Any] | str | Path | None = None, **kwargs: Any) -> Path:
    """Merge adapters into the base weights and save a plain transformers model; returns its folder."""
    from .export import run_export

    return run_export(from_python(ExportArguments, config, **kwargs))


def deploy(config: DeployArguments | Mapping[str, Any] | str | Path | None = None, **kwargs: Any) -> None:
    """Serve the model and its adapters over the OpenAI HTTP API until SIGTERM / Ctrl-C."""
    from .deploy import run_deploy

    run_deploy(from_python(DeployArguments, config, **kwargs))


def rlhf(config: RlhfArguments | Mapping[str, Any] | str | Path | None = None, **kwargs: Any):
    """Preference tuning (dpo, orpo, kto, simpo, cpo, grpo) on TRL; returns an ``SftResult``."""
    from .rlhf import run_rlhf

    return run_rlhf(from_python(RlhfArguments, config, **kwargs))


def evaluate(config: EvalArguments | Mapping[str, Any] | str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Score the base model and each adapter on the same data (``swiftune eval``); returns the results."""
    from .evaluate import run_eval

    return run_eval(from_python(EvalArguments, config, **kwargs))
