"""``COMMANDS``: each ``swiftune`` recipe command and its argument model (the CLI's table).

Apart from ``arguments`` because rlhf's arguments extend sft's: ``arguments`` -> ``rlhf_arguments`` ->
this table reads top-down, with no import back.
"""

from __future__ import annotations

from .arguments import (
    CommandArguments,
    DeployArguments,
    EvalArguments,
    ExportArguments,
    InferArguments,
    SftArguments,
)
from .rlhf_arguments import RlhfArguments

COMMANDS: dict[str, type[CommandArguments]] = {
    "sft": SftArguments,
    "infer": InferArguments,
    "export": ExportArguments,
    "rlhf": RlhfArguments,
    "deploy": DeployArguments,
    "eval": EvalArguments,
}
