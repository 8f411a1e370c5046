"""sft's tuner-dependent defaults: the learning rate follows the tuner's typical rate unless given."""

from __future__ import annotations

import pytest

from swiftune.cli.args import from_python, parse_command
from swiftune.recipes import sft_defaults
from swiftune.recipes.arguments import SftArguments


@pytest.mark.parametrize("tuner, expected", [("lora", 5e-4), ("qlora", 5e-4), ("adapter", 1e-3), ("prefix", 1e-2),
                                             ("prompt", 3e-2)])
def test_learning_rate_follows_the_tuner(tuner: str, expected: float) -> None:
    assert sft_defaults.learning_rate(from_python(SftArguments, tuner=tuner)) == pytest.approx(expected)
    # The command line's arguments go through from_python again (swiftune.sft(args)): still a default.
    parsed = parse_command(SftArguments, ["--tuner", tuner], prog="swiftune sft")
    assert sft_defaults.learning_rate(from_python(SftArguments, parsed)) == pytest.approx(expected)


def test_a_given_learning_rate_wins() -> None:
    args = parse_command(SftArguments, ["--tuner", "prompt", "--learning_rate", "1e-3"], prog="swiftune sft")
    assert sft_defaults.learning_rate(from_python(SftArguments, args)) == pytest.approx(1e-3)
    assert sft_defaults.learning_rate(from_python(SftArguments, tuner="prefix", learning_rate=5e-4)) == pytest.approx(5e-4)


def test_loss_smoothing_follows_a_short_run() -> None:
    """A short run's smoothed loss is the raw loss; a long one is smoothed over a tenth of its points."""
    from swiftune.recipes.plot import smooth

    falling = [3.0 * 0.8**i for i in range(9)]
    assert smooth(falling) == pytest.approx(falling)
    long = [3.0 * 0.97**i for i in range(200)]
    smoothed = smooth(long)
    assert smoothed[-1] == pytest.approx(long[-1], rel=0.5) and smoothed[-1] > long[-1]
    assert smooth(long, 0.0) == pytest.approx(long)


def test_sft_lora_alpha_is_32_unless_given() -> None:
    from swiftune.tuners.lora import LoraConfig

    assert parse_command(SftArguments, [], prog="swiftune sft").tuner_config().lora_alpha == 32
    assert parse_command(SftArguments, ["--lora_alpha", "8"], prog="swiftune sft").tuner_config().lora_alpha == 8
    assert parse_command(SftArguments, ["--tuner", "qlora"], prog="swiftune sft").tuner_config().lora_alpha == 32
    assert LoraConfig().lora_alpha == 8  # the Python API keeps PEFT's default


def test_a_command_with_its_own_default_keeps_it() -> None:
    from swiftune.recipes.rlhf_arguments import RlhfArguments

    args = from_python(RlhfArguments, tuner="prompt", dataset=["prefs.jsonl"])
    assert sft_defaults.learning_rate(args) == RlhfArguments.model_fields["learning_rate"].default
    assert from_python(RlhfArguments, dataset=["prefs.jsonl"]).tuner_config().lora_alpha == 8  # PEFT's


def test_help_shows_the_default_sft_uses(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_command(SftArguments, ["--help"], prog="swiftune sft")
    out = " ".join(capsys.readouterr().out.split())
    assert "scaling = lora_alpha / r (default: 32)" in out
