"""Training / inference recipes behind the CLI: ``sft``, ``infer``, ``export``.

Call them as ``swiftune.sft`` / ``swiftune.infer`` / ``swiftune.export`` (defined in ``calls``).
Heavy imports (torch, transformers) happen inside the calls.
"""

from __future__ import annotations

from .arguments import ExportArguments, InferArguments, SftArguments
from .rlhf_arguments import RlhfArguments

__all__ = ["SftArguments", "InferArguments", "ExportArguments", "RlhfArguments"]
