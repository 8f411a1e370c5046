"""Built-in GRPO reward functions: ``accuracy`` (math / exact match) and ``format`` (a regex).

Both read TRL's reward-function arguments (``completions`` plus the dataset's columns, one value per
completion) and return one float per completion. Third-party rewards arrive the same way, through
the ``register_rewards`` hook.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from swiftune.rewards import RewardFunction, completion_text

#: ms-swift's format reward: reasoning in <think>, the answer in <answer>, nothing else.
FORMAT_PATTERN = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
#: Columns that hold the reference answer, in the order they are looked for.
SOLUTION_COLUMNS = ("solution", "answer", "ground_truth", "target")


def final_answer(text: str) -> str:
    """The answer a text commits to: the last ``\\boxed{}``, else ``<answer>``, else what follows ``####``."""
    for pattern in (_BOXED, _ANSWER_TAG):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip()
    return text.strip()


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace("$", ""))
    if not found:
        return None
    value = found[-1].replace(",", "")
    try:
        if "/" in value:
            num, den = value.split("/")
            return float(num) / float(den)
        return float(value)
    except (ValueError, ZeroDivisionError):
        return None


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(".").replace("$", "")).lower()


def answers_match(completion: str, solution: str) -> bool:
    """Equal final answers: as numbers when the solution is one, else as normalised text."""
    got, want = final_answer(completion), final_answer(solution)
    want_number = _number(want) if _NUMBER.fullmatch(want.replace("$", "").strip()) else None
    if want_number is not None:
        got_number = _number(got)
        return got_number is not None and abs(got_number - want_number) <= 1e-6 * max(1.0, abs(want_number))
    return _normal(got) == _normal(want)


def accuracy(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """1.0 where the completion's final answer equals the row's ``solution`` (numbers compared as numbers)."""
    solutions = next((columns[c] for c in SOLUTION_COLUMNS if columns.get(c) is not None), None)
    if solutions is None:
        raise ValueError(f"reward 'accuracy' needs a column with the reference answer: one of {', '.join(SOLUTION_COLUMNS)}")
    return [None if s is None else float(answers_match(completion_text(c), str(s)))
            for c, s in zip(completions, solutions)]


def format_reward(completions: Sequence[Any], **columns: Any) -> list[float]:
    """1.0 where the completion is ``<think>...</think><answer>...</answer>`` and nothing else."""
    return [float(bool(FORMAT_PATTERN.match(completion_text(c)))) for c in completions]


REWARDS = (
    RewardFunction("accuracy", accuracy, "1 if the final answer (\\boxed{}, <answer>, ####) equals the row's solution"),
    RewardFunction("format", format_reward, "1 if the completion is <think>...</think><answer>...</answer>"),
)


def register_all(register) -> None:
    for reward in REWARDS:
        register(reward)
