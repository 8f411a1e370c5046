"""One pydantic model per command: flags, YAML and Python give the same validated arguments,
and every mistake is one line that names the flag / key, with a suggestion."""

from __future__ import annotations

import pytest

from swiftune import cli
from swiftune.cli.args import from_python, parse_command
from swiftune.errors import ConfigError
from swiftune.recipes.arguments import (
    DEFAULT_DATASET,
    DEFAULT_MODEL,
    ExportArguments,
    InferArguments,
    SftArguments,
)

from cli_fixtures import run_cli


def sft(*argv: str) -> SftArguments:
    return parse_command(SftArguments, list(argv), prog="swiftune sft")


def error_of(*argv: str) -> str:
    with pytest.raises(ConfigError) as exc:
        sft(*argv)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_no_arguments_are_the_demo() -> None:
    args = sft()
    assert (args.model, args.dataset, args.tuner) == (DEFAULT_MODEL, [DEFAULT_DATASET], "lora")
    assert args.tuner_args == {} and args.resume is False
    assert args.tuner_config().r == 8  # the tuner's own default


def test_flags_are_converted_by_the_model() -> None:
    args = sft("--model", "m", "--dataset", "a.jsonl", "--dataset", "b#10", "--learning-rate", "3e-4",
               "--max-steps", "7", "--packing", "--precision", "fp32", "--report-to", "tensorboard")
    assert args.dataset == ["a.jsonl", "b#10"]
    assert args.learning_rate == pytest.approx(3e-4) and args.max_steps == 7
    assert args.packing is True and args.precision == "fp32" and args.report_to == ["tensorboard"]
    assert sft("--no-packing").packing is False
    assert sft("--max-steps", "3", "--max-steps", "9").max_steps == 9  # the last one wins


def test_tuner_fields_become_flags() -> None:
    args = sft("--r", "16", "--lora-alpha", "32", "--target-modules", "q_proj", "--target-modules", "v_proj")
    assert args.tuner_args == {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"]}
    cfg = args.tuner_config()
    assert (cfg.r, cfg.lora_alpha, cfg.target_modules) == (16, 32, ["q_proj", "v_proj"])
    # One plain name is a name (a list), "all-linear" and regexes keep PEFT's string meaning.
    assert sft("--target-modules", "q_proj").tuner_args["target_modules"] == ["q_proj"]
    assert sft("--target-modules", "all-linear").tuner_args["target_modules"] == "all-linear"
    assert sft("--target-modules", r".*\.q_proj").tuner_args["target_modules"] == r".*\.q_proj"
    assert sft("--lora-alpha", "0.5").tuner_args["lora_alpha"] == 0.5


def test_yaml_then_flags(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model: tiny\nlearning-rate: 1.0e-3\nmax_steps: 5\ndataset: [a.jsonl, b.jsonl]\n"
        "tuner_args:\n  r: 4\n  lora_alpha: 16\n"
    )
    args = sft(str(cfg), "--learning-rate", "2e-4", "--r", "2")
    assert args.model == "tiny" and args.max_steps == 5 and args.dataset == ["a.jsonl", "b.jsonl"]
    assert args.learning_rate == pytest.approx(2e-4)  # the flag wins
    assert args.tuner_args == {"r": 2, "lora_alpha": 16}
    assert sft("--config", str(cfg)).learning_rate == pytest.approx(1e-3)


def test_python_keywords_and_yaml(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("max_steps: 5\ntuner_args: {r: 4}\n")
    args = from_python(SftArguments, cfg, max_steps=9, dataset="x.jsonl")
    assert (args.max_steps, args.dataset, args.tuner_args) == (9, ["x.jsonl"], {"r": 4})
    with pytest.raises(ConfigError, match=r"^unknown argument lerning_rate; did you mean learning_rate\?$"):
        from_python(SftArguments, lerning_rate=1.0)
    with pytest.raises(ConfigError, match=r"^max_steps: Input should be a valid integer"):
        from_python(SftArguments, max_steps="many")
    with pytest.raises(ConfigError, match=r"^tuner_args\.r: Input should be greater than or equal to 1"):
        from_python(SftArguments, tuner_args={"r": 0}).tuner_config()


def test_resume_is_a_switch_or_a_folder() -> None:
    assert sft("--resume").resume is True
    assert sft("--resume", "out/checkpoint-5").resume == "out/checkpoint-5"
    assert sft("--no-resume").resume is False


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--lerning-rate", "1"], "unknown argument --lerning-rate; did you mean --learning-rate?"),
        (["--lora-alpah", "3"], "unknown argument --lora-alpah; did you mean --lora-alpha?"),
        (["--precision", "bf61"], "--precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'; did you mean 'bf16'? (got 'bf61')"),
        (["--learning-rate", "fast"], "--learning-rate: Input should be a valid number, unable to parse"),
        (["--r", "0"], "--r: Input should be greater than or equal to 1 (got '0')"),
        (["--tuner", "lorra"], "--tuner: unknown tuner 'lorra'"),
        (["--max-steps"], "argument --max-steps: expected one argument"),
        (["run.yaml", "extra"], "run.yaml: no such file"),
    ],
)
def test_mistakes_are_one_line(argv: list[str], expected: str, capsys) -> None:
    if argv[0] == "--max-steps":  # argparse's own errors exit like every usage error
        with pytest.raises(SystemExit) as exc:
            sft(*argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and expected in err
        return
    message = error_of(*argv)
    assert message.startswith(expected), message
    if argv[0] == "--tuner":
        assert "did you mean: lora" in message.lower()


def test_yaml_mistakes_name_the_file_and_key(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("learning_rat: 1\n")
    assert error_of(str(cfg)) == f"{cfg}: unknown key learning_rat; did you mean learning_rate?"
    cfg.write_text("r: 4\n")  # a tuner field at the top level, as in ms-swift's YAML files
    assert sft(str(cfg)).tuner_args == {"r": 4}
    cfg.write_text("tuner_args:\n  rank: 4\n")
    assert error_of(str(cfg)).startswith(f"{cfg}: tuner_args: unknown lora field rank")
    cfg.write_text("tuner_args:\n  r: -1\n")
    assert error_of(str(cfg)) == f"{cfg}: tuner_args.r: Input should be greater than or equal to 1 (got -1)"
    cfg.write_text("max_steps: [1\n")
    assert "invalid YAML" in error_of(str(cfg))
    cfg.write_text("precision: fp8\n")
    assert error_of(str(cfg)).startswith(f"{cfg}: precision: Input should be")
    assert error_of("--config", str(tmp_path / "nope.yaml")) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_infer_and_export_arguments() -> None:
    args = parse_command(InferArguments, ["--adapter", "a", "--adapter", "b", "--do-sample", "--top-p", "0.5"],
                         prog="swiftune infer")
    assert args.adapter == ["a", "b"] and args.do_sample and args.top_p == 0.5
    with pytest.raises(ConfigError, match=r"^--top-p: Input should be less than or equal to 1"):
        parse_command(InferArguments, ["--top-p", "2"], prog="swiftune infer")
    # No --output: the adapter folder's name + "-merged" (ms-swift's default), chosen when exporting.
    assert parse_command(ExportArguments, ["--adapter", "a"], prog="swiftune export").output is None
    assert ExportArguments(adapter="a", output="o").adapter == ["a"]


def test_help_shows_command_and_tuner_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        sft("--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--learning-rate", "--per-device-train-batch-size", "--dataset", "--resume", "--fsdp", "--deepspeed"):
        assert flag in out
    assert "lora tuner options" in out and "--lora-alpha" in out and "--target-modules" in out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    for command in ("sft", "infer", "export"):
        assert f"    {command} " in top


def test_cli_error_exit_code_and_no_traceback() -> None:
    proc = run_cli("sft", "--lerning-rate", "1e-4", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "swiftune: error: unknown argument --lerning-rate; did you mean --learning-rate?"
    )
    assert "Traceback" not in proc.stderr


def test_every_field_of_every_tuner_config_is_a_flag() -> None:
    from swiftune import registries
    from swiftune.cli.args import command_parser, flag_name

    for name in registries.tuners.names():
        config = registries.tuners.get(name).config_class
        parser = command_parser(SftArguments, "swiftune sft", config)
        flags = {opt for action in parser._actions for opt in action.option_strings}
        fields = [f for f in config.model_fields if f != "tuner" and f not in SftArguments.model_fields]
        missing = [flag_name(f) for f in fields if flag_name(f) not in flags]
        assert not missing, f"{name}: {missing}"
    # A mapping field takes a JSON object on the command line.
    args = sft("--tuner", "peft", "--peft-config", '{"peft_type": "IA3", "target_modules": ["k_proj"]}')
    assert args.tuner_args["peft_config"]["peft_type"] == "IA3"
    assert error_of("--tuner", "peft", "--peft-config", "{nope").startswith("--peft-config: expected a JSON object")
    # A tuner field named like a command field is set by the command's flag (one idea, one flag).
    assert sft("--tuner", "qlora", "--gradient-checkpointing").tuner_config().gradient_checkpointing is True
    assert sft("--tuner", "qlora", "--no-gradient-checkpointing").tuner_config().gradient_checkpointing is False


def test_peft_bridge_takes_peft_fields_as_flags_yaml_and_keywords(tmp_path) -> None:
    """The bridge's config is open (any PEFT field beside 'tuner'): flags, tuner_args and keywords reach it."""
    from swiftune.cli.args import from_python, parse_command
    from swiftune.recipes.arguments import SftArguments

    flags = parse_command(SftArguments, ["--tuner", "peft", "--peft_type", "IA3", "--target_modules", "q_proj", "v_proj",
                                         "--feedforward_modules", "v_proj"], prog="swiftune sft")
    assert flags.tuner_args == {"peft_type": "IA3", "target_modules": ["q_proj", "v_proj"], "feedforward_modules": "v_proj"}
    config = flags.tuner_config()
    assert config.method == "IA3" and sorted(config.peft_config["target_modules"]) == ["q_proj", "v_proj"]
    keywords = from_python(SftArguments, tuner="peft", tuner_args={"peft_type": "LOHA", "r": 4})
    assert keywords.tuner_config().peft_config["r"] == 4
    with pytest.raises(Exception, match="unknown argument --peft-type"):  # a closed config still refuses it
        parse_command(SftArguments, ["--tuner", "lora", "--peft_type", "IA3"], prog="swiftune sft")
