"""ms-swift's spelling works: snake_case flags, booleans with values, space-separated lists, its
argument names as aliases (flags, YAML, Python), clear errors for its flags swiftune lacks, and
the self-cognition data filled from --model_name / --model_author."""

from __future__ import annotations

import pytest

from swiftune.cli import aliases
from swiftune.cli.args import from_python, parse_command
from swiftune.errors import ConfigError
from swiftune.recipes.arguments import ExportArguments, InferArguments, SftArguments


def sft(*argv: str) -> SftArguments:
    return parse_command(SftArguments, list(argv), prog="swiftune sft")


def infer(*argv: str) -> InferArguments:
    return parse_command(InferArguments, list(argv), prog="swiftune infer")


def export(*argv: str) -> ExportArguments:
    return parse_command(ExportArguments, list(argv), prog="swiftune export")


def error(command, *argv: str) -> str:
    with pytest.raises(ConfigError) as exc:
        command(*argv)
    return str(exc.value)


# -- spelling -------------------------------------------------------------------------------------
def test_snake_and_kebab_case_are_one_flag() -> None:
    a = sft("--learning_rate", "3e-4", "--per_device_train_batch_size=3", "--lora_alpha", "16")
    b = sft("--learning-rate", "3e-4", "--per-device-train-batch-size=3", "--lora-alpha", "16")
    assert a == b and a.learning_rate == pytest.approx(3e-4) and a.per_device_train_batch_size == 3
    assert a.tuner_args == {"lora_alpha": 16}
    assert sft("--learning_rate", "1e-3", "--learning-rate", "2e-3").learning_rate == pytest.approx(2e-3)


@pytest.mark.parametrize("word, expected", [("true", True), ("True", True), ("1", True), ("yes", True),
                                            ("false", False), ("FALSE", False), ("0", False), ("no", False)])
def test_booleans_take_a_value(word: str, expected: bool) -> None:
    assert sft("--packing", word).packing is expected
    assert sft("--gradient_checkpointing", word).gradient_checkpointing is expected
    assert infer("--stream", word).stream is expected
    assert sft("--use_rslora", word).tuner_args == {"use_rslora": expected}


def test_booleans_bare_and_negated() -> None:
    assert sft("--packing").packing is True and sft("--no-packing").packing is False
    assert sft("--no_packing").packing is False
    assert error(sft, "--packing", "maybe").startswith("--packing: Input should be a valid boolean")


def test_lists_space_separated_or_repeated() -> None:
    assert sft("--dataset", "a.jsonl", "b.jsonl#5", "--dataset", "c").dataset == ["a.jsonl", "b.jsonl#5", "c"]
    assert sft("--target_modules", "q_proj", "v_proj").tuner_args == {"target_modules": ["q_proj", "v_proj"]}
    assert sft("--target_modules", "all-linear").tuner_args == {"target_modules": "all-linear"}
    assert sft("--report_to", "tensorboard", "wandb").report_to == ["tensorboard", "wandb"]


def test_literal_numbers_from_text() -> None:
    assert sft("--tuner", "qlora", "--bits", "8").tuner_args == {"bits": 8}
    assert "Input should be 4 or 8" in error(sft, "--tuner", "qlora", "--bits", "3")


@pytest.mark.parametrize("argv, expected", [
    (["--lerning_rate", "1"], "unknown argument --lerning-rate; did you mean --learning-rate?"),
    (["--lora_alpah", "1"], "unknown argument --lora-alpah; did you mean --lora-alpha?"),
    (["--lora_rnak", "8"], "unknown argument --lora-rnak; did you mean --lora-rank?"),
    (["--max_step", "8"], "unknown argument --max-step; did you mean --max-steps?"),
])
def test_suggestions_on_normalized_names(argv: list[str], expected: str) -> None:
    assert error(sft, *argv) == expected


def test_suggestion_is_never_the_flag_itself() -> None:
    from swiftune.cli.args import unknown_message

    assert unknown_message("--max_steps", ["max_steps", "max_step"]) == \
        "unknown argument --max-steps; did you mean --max-step?"
    assert "did you mean --learning-rate" not in unknown_message("--learning_rate", ["learning_rate"])


def test_two_config_files_are_an_error(tmp_path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("max_steps: 3\n")
    b.write_text("max_steps: 5\n")
    assert "two YAML config files" in error(sft, str(a), "--config", str(b))
    assert "two YAML config files" in error(sft, "--config", str(a), "--config", str(b))
    assert sft("--config", str(b)).max_steps == 5


# -- aliases --------------------------------------------------------------------------------------
def test_tuner_aliases() -> None:
    for flag in ("--tuner_type", "--train_type", "--tuner-type"):
        assert sft(flag, "adapter").tuner == "adapter"
    assert sft("--train_type", "LoRA").tuner == "lora"
    args = sft("--lora_rank", "16", "--lora_alpha", "32", "--lora_dropout", "0.1", "--lora_bias", "all",
               "--init_weights", "false")
    assert args.tuner_args == {"r": 16, "lora_alpha": 32, "lora_dropout": 0.1, "bias": "all",
                               "init_lora_weights": False}
    assert sft("--init_weights", "gaussian").tuner_args == {"init_lora_weights": "gaussian"}
    assert error(sft, "--tuner", "adapter", "--lora_rank", "8") == (
        "--lora-rank is ms-swift's name for --r, which is not an argument of this command nor of the 'adapter' tuner")
    assert error(infer, "--output_dir", "o").startswith("--output-dir is ms-swift's name for --output, which is not")


def test_quantization_aliases_select_qlora() -> None:
    args = sft("--quant_method", "bnb", "--quant_bits", "4", "--bnb_4bit_quant_type", "fp4",
               "--bnb_4bit_use_double_quant", "false", "--bnb_4bit_compute_dtype", "bfloat16")
    assert args.tuner == "qlora"
    assert args.tuner_args == {"bits": 4, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False,
                               "bnb_4bit_compute_dtype": "bfloat16"}
    assert sft("--train_type", "lora", "--quant_bits", "8").tuner_args == {"bits": 8}
    assert "bitsandbytes only" in error(sft, "--quant_method", "hqq", "--quant_bits", "4")
    assert "also give --quant_bits" in error(sft, "--quant_method", "bnb")
    assert "LoRA only" in error(sft, "--train_type", "full", "--quant_bits", "4")


def test_training_aliases() -> None:
    args = sft("--torch_dtype", "bfloat16", "--split_dataset_ratio", "0.1", "--warmup_ratio", "0.05",
               "--resume_from_checkpoint", "out/checkpoint-5", "--truncation_strategy", "delete")
    assert (args.precision, args.val_ratio, args.warmup_steps) == ("bf16", 0.1, 0.05)
    assert (args.resume, args.truncation) == ("out/checkpoint-5", "drop")
    assert sft("--torch_dtype", "float32").precision == "fp32"
    assert sft("--torch_dtype", "float16").precision == "fp16"
    assert "in [0, 1)" in error(sft, "--warmup_ratio", "2")
    args = sft("--system", "You are a helpful assistant.", "--model_author", "swift", "--model_name", "swift-robot",
               "--use_hf", "true")
    assert (args.system, args.model_author, args.model_name) == ("You are a helpful assistant.", ["swift"], ["swift-robot"])
    assert sft("--model_name", "小黄", "Xiao Huang").model_name == ["小黄", "Xiao Huang"]


def test_ms_swift_fields_that_land_with_their_features() -> None:
    """--lora_dtype, --use_dora, --lorap_lr_ratio map onto fields added with their features."""
    lora_fields = SftArguments().tuner_config().model_fields
    if "adapter_dtype" in SftArguments.model_fields:
        assert sft("--lora_dtype", "bfloat16").adapter_dtype == "bfloat16"
    if "use_dora" in lora_fields:
        assert sft("--use_dora", "true").tuner_args == {"use_dora": True}
    if "lorap_lr_ratio" in SftArguments.model_fields:
        assert sft("--lorap_lr_ratio", "16").lorap_lr_ratio == 16


def test_infer_aliases() -> None:
    args = infer("--adapters", "a", "b", "--stream", "false", "--temperature", "0", "--max_new_tokens", "64",
                 "--val_dataset", "q.jsonl", "--result_path", "r.jsonl", "--max_batch_size", "4",
                 "--merge_lora", "true", "--infer_backend", "transformers", "--torch_dtype", "float32")
    assert args.adapter == ["a", "b"] and args.stream is False and args.temperature == 0
    assert (args.input, args.output, args.batch_size, args.merge, args.precision) == ("q.jsonl", "r.jsonl", 4, True, "fp32")
    assert infer("--infer_backend", "pt").adapter == []
    message = error(infer, "--infer_backend", "vllm")
    assert message.startswith("--infer-backend vllm: this command generates with transformers only (supported: transformers, pt)")
    assert "installed" in message


def test_temperature_zero_is_greedy() -> None:
    from swiftune.recipes.generation import Generator

    kwargs = Generator.generation_kwargs(_FakeGenerator(), infer("--temperature", "0", "--do-sample"))
    assert kwargs["do_sample"] is False and kwargs["temperature"] is None
    kwargs = Generator.generation_kwargs(_FakeGenerator(), infer("--temperature", "0.5", "--do-sample"))
    assert kwargs["do_sample"] is True and kwargs["temperature"] == 0.5


class _FakeGenerator:
    eos_ids = [0]
    pad_id = 0


def test_export_aliases() -> None:
    args = export("--adapters", "ckpt", "--merge_lora", "true", "--output_dir", "merged", "--torch_dtype", "bfloat16")
    assert (args.adapter, args.output, args.dtype) == (["ckpt"], "merged", "bfloat16")
    assert error(export, "--adapters", "c", "--output_dir", "o", "--merge_lora", "false").startswith(
        "--merge-lora false: not supported by swiftune (supported: true")


def test_unsupported_ms_swift_flags_say_so() -> None:
    assert error(sft, "--model_type", "qwen2_5").startswith(
        "--model-type is an ms-swift flag swiftune does not support yet: ")
    assert error(sft, "--streaming", "true").startswith("--streaming is an ms-swift flag")
    assert "ms-swift flag" in error(sft, "--tuner_backend", "unsloth") or "supported: peft" in error(
        sft, "--tuner_backend", "unsloth")


def test_aliases_in_yaml_and_python(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: m\ntrain_type: lora\nlora_rank: 4\nlora_alpha: 16\ntorch_dtype: bfloat16\n"
                   "dataset: [a.jsonl, 'swift/self-cognition#20']\nwarmup_ratio: 0.1\nmodel_name: [robot]\n")
    args = sft(str(cfg), "--lora_rank", "2")
    assert args.tuner_args == {"r": 2, "lora_alpha": 16} and args.precision == "bf16"
    assert args.warmup_steps == 0.1 and args.model_name == ["robot"]
    cfg.write_text("model_type: qwen2_5\n")
    assert error(sft, str(cfg)).startswith(f"{cfg}: model_type is an ms-swift flag")
    py = from_python(SftArguments, train_type="lora", lora_rank=4, torch_dtype="float16", split_dataset_ratio=0.0)
    assert (py.tuner_args, py.precision, py.val_ratio) == ({"r": 4}, "fp16", 0.0)
    assert from_python(InferArguments, adapters="x", result_path="o.jsonl").adapter == ["x"]


def test_alias_table_targets_exist_somewhere() -> None:
    """Every alias names a field of some command or of the lora / qlora config (others land later)."""
    from swiftune import registries
    from swiftune.recipes.arguments import COMMANDS

    fields = {f for model in COMMANDS.values() for f in model.model_fields}
    fields |= set(registries.tuners.get("qlora").config_class.model_fields)
    pending = {"adapter_dtype"}  # added by the adapter-dtype work; the alias maps onto it when it lands
    for alias in aliases.ALIASES:
        assert {t.field for t in alias.targets} & (fields | pending), alias.name
    assert not set(aliases.UNSUPPORTED) & {a.name for a in aliases.ALIASES}


# -- self-cognition -------------------------------------------------------------------------------
def test_self_cognition_is_registered_and_sampled() -> None:
    from swiftune.data import load_datasets

    train, _ = load_datasets(["swift/self-cognition#7"], val_ratio=0)
    assert len(train) == 7
    everything, _ = load_datasets(["swift/self-cognition"], val_ratio=0)
    texts = [m["content"] for e in everything for m in e["messages"]]
    assert any("{{NAME}}" in t for t in texts) and any("{{AUTHOR}}" in t for t in texts)
    assert any("你" in t for t in texts) and any("Who" in t for t in texts)
    assert len(load_datasets(["swift/self-cognition#200"], val_ratio=0)[0]) == 200


def test_self_cognition_filling() -> None:
    from swiftune.data import load_datasets
    from swiftune.data.errors import DataError
    from swiftune.recipes.bridge import personalize

    rows, _ = load_datasets(["swift/self-cognition"], val_ratio=0)
    for names, authors in ((["小黄", "Xiao Huang"], ["魔搭", "ModelScope"]), (["Xiao Huang", "小黄"], ["ModelScope", "魔搭"])):
        filled = personalize(rows, system=None, model_name=names, model_author=authors)
        assert len(filled) == len(rows)
        for example in filled:
            answer = example["messages"][-1]["content"]
            assert "{{" not in answer
            chinese = any("\u4e00" <= ch <= "\u9fff" for ch in example["messages"][0]["content"])
            if "小黄" in answer or "魔搭" in answer:
                assert chinese
            if "Xiao Huang" in answer or "ModelScope" in answer:
                assert not chinese
        assert sum("小黄" in e["messages"][-1]["content"] for e in filled) > 5
        assert sum("Xiao Huang" in e["messages"][-1]["content"] for e in filled) > 5
    one = personalize(rows, system=None, model_name=["robot"], model_author=["acme"])
    assert all("{{" not in m["content"] for e in one for m in e["messages"])
    assert sum("robot" in e["messages"][-1]["content"] for e in one) > 10
    with pytest.raises(DataError, match="--model_name"):
        personalize(rows, system=None, model_name=[], model_author=["acme"])


def test_system_prompt_for_rows_without_one(tmp_path) -> None:
    from swiftune.recipes.bridge import personalize

    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"messages": [{"role": "system", "content": "own"}, {"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "yo"}]}]
    out = personalize(rows, system="Be brief.", model_name=[], model_author=[])
    assert out[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out[1]["messages"][0] == {"role": "system", "content": "own"} and len(out[1]["messages"]) == 3
    prompt = tmp_path / "system.txt"
    prompt.write_text("From a file.\n")
    assert personalize(rows, system=str(prompt), model_name=[], model_author=[])[0]["messages"][0]["content"] == "From a file."
    assert personalize(rows, system=None, model_name=[], model_author=[]) == rows


# -- the migration guide's tables are the alias data ----------------------------------------------
def _doc_flags(section: str) -> set[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "migrating-from-ms-swift.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    flags = set()
    for line in body.splitlines():
        if line.startswith("| `--"):
            first = line.split("|")[1]
            flags |= {aliases.normalize(f) for f in re.findall(r"`(--[a-z0-9_]+)`", first)}
    return flags


def test_migration_guide_tables_match_the_alias_data() -> None:
    assert _doc_flags("ms-swift names (aliases)") == {a.name for a in aliases.ALIASES}
    assert _doc_flags("Accepted values") == {a.name for a in aliases.ACCEPTED}
    assert _doc_flags("Not supported yet") == set(aliases.UNSUPPORTED)


def test_unsupported_names_are_not_fields_of_any_command() -> None:
    """A flag that became a field elsewhere must leave the not-supported table."""
    from swiftune.recipes.arguments import COMMANDS

    fields = {f for model in COMMANDS.values() for f in model.model_fields}
    assert not set(aliases.UNSUPPORTED) & fields - {"max_model_len"}  # deploy's own; infer cuts to --max-length
