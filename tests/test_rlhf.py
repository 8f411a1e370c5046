"""``swiftune rlhf``: each method's loss against TRL's own trainer on a PEFT model, the reference by
disabled adapters against a reference copy, exact resume, bad rows, the data layouts, sft's masks,
the reward plugin hook, GRPO and the run folder that ``infer`` reads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_fixtures import PAIRS, run_cli, save_tiny_model
from plugin_fixtures import swiftune_cli

import swiftune
from swiftune import Swift, registries
from swiftune.data import DataError
from swiftune.recipes import bridge
from swiftune.recipes import rlhf as recipe
from swiftune.recipes.rlhf_arguments import RlhfArguments
from swiftune.recipes.sft import training_kwargs
from swiftune.serialization import adapter_dir

FAST = dict(precision="fp32", per_device_train_batch_size=4, gradient_accumulation_steps=1, val_ratio=0.0,
            logging_steps=1, learning_rate=1e-2)


def _chat(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def preference_rows() -> list[dict]:
    """ms-swift's layout: the conversation ends with the chosen answer; a wrong one beside it."""
    return [{"messages": _chat(q, a), "rejected_response": "No" if a != "No" else "Paris"} for q, a in PAIRS]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("rlhf") / "tiny")


@pytest.fixture
def data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pref.jsonl", preference_rows())


def _policy(tiny: Path, args: RlhfArguments, tmp_path: Path):
    """(swift model with perturbed LoRA weights so policy != reference, tokenizer, template, TRL rows)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    swift = Swift.prepare(AutoModelForCausalLM.from_pretrained(tiny), args.tuner_config())
    with torch.no_grad():
        for p in swift.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.2)
    swift.save_pretrained(tmp_path / "adapter")
    template = bridge.resolve_template(None, swift.model, tok)
    rows, _ = recipe.load_rows(args, template)
    return swift, tok, template, rows


def _loss(trainer, n: int = 4) -> torch.Tensor:
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(n)])
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch)


def _trl_peft_trainer(method: str, args: RlhfArguments, tiny: Path, tmp_path: Path, tok, rows):
    """TRL's own trainer (no swiftune class) on PEFT's LoRA holding the same weights; reference: TRL's."""
    import peft
    from datasets import Dataset
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer, KTOTrainer
    from trl.experimental.cpo import CPOTrainer
    from trl.experimental.orpo import ORPOTrainer

    from swiftune.recipes.rlhf_trainers import method_config

    cls = {"dpo": DPOTrainer, "kto": KTOTrainer, "orpo": ORPOTrainer, "cpo": CPOTrainer, "simpo": CPOTrainer}[method]
    saved = adapter_dir(tmp_path / "adapter", "default")
    config = method_config(args, training_kwargs(args, tmp_path / "trl", "fp32", False), precompute_reference=False)
    trainer = cls(model=AutoModelForCausalLM.from_pretrained(tiny), args=config, train_dataset=Dataset.from_list(rows),
                  processing_class=tok, peft_config=peft.LoraConfig.from_pretrained(str(saved)))
    result = peft.set_peft_model_state_dict(trainer.model, load_file(str(saved / "adapter_model.safetensors")))
    assert not result.unexpected_keys
    return trainer


@pytest.mark.parametrize("method", ["dpo", "kto", "orpo", "cpo", "simpo"])
def test_loss_equals_trl_own_trainer_on_peft(method, tiny, data, tmp_path):
    args = RlhfArguments(model=str(tiny), dataset=[str(data)], rlhf_type=method, **FAST)
    swift, tok, _, rows = _policy(tiny, args, tmp_path)
    ours = recipe.make_trainer(args, swift, None, tok, rows, [], tmp_path / "ours", "fp32")
    theirs = _trl_peft_trainer(method, args, tiny, tmp_path, tok, rows)
    mine, trl_own = _loss(ours), _loss(theirs)
    torch.testing.assert_close(mine, trl_own, atol=1e-5, rtol=1e-5)
    if method == "dpo":  # the perturbed adapters move the policy away from the reference
        assert abs(mine.item() - math.log(2)) > 1e-3


def test_reference_by_disabling_equals_reference_copy(tiny, data, tmp_path):
    from transformers import AutoModelForCausalLM

    args = RlhfArguments(model=str(tiny), dataset=[str(data)], **FAST)
    swift, tok, _, rows = _policy(tiny, args, tmp_path)
    disabled = recipe.make_trainer(args, swift, None, tok, rows, [], tmp_path / "a", "fp32")
    assert disabled.ref_model is None and recipe.reference_model(args, swift) is None  # no second model
    copy_swift = Swift.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), tmp_path / "adapter")
    reference = AutoModelForCausalLM.from_pretrained(tiny).eval()
    with_copy = recipe.make_trainer(args, copy_swift, reference, tok, rows, [], tmp_path / "b", "fp32")
    batch = with_copy.data_collator([with_copy.train_dataset[i] for i in range(4)])
    chosen, rejected = with_copy.compute_ref_log_probs(with_copy.ref_model, batch)
    torch.testing.assert_close(chosen, torch.tensor(disabled.train_dataset["ref_chosen_logps"][:4]), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(rejected, torch.tensor(disabled.train_dataset["ref_rejected_logps"][:4]), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(_loss(disabled), _loss(with_copy), atol=1e-5, rtol=1e-5)


def test_full_fine_tuning_loads_a_reference_copy(tiny, data):
    from transformers import AutoModelForCausalLM

    args = RlhfArguments(model=str(tiny), dataset=[str(data)], tuner="full", **FAST)
    swift = Swift.prepare(AutoModelForCausalLM.from_pretrained(tiny), args.tuner_config())
    reference = recipe.reference_model(args, swift)
    assert reference is not None and not any(p.requires_grad for p in reference.parameters())
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(reference.parameters(), swift.parameters()))


def test_completion_tokens_are_sfts_trained_tokens(tiny, data, tmp_path):
    args = RlhfArguments(model=str(tiny), dataset=[str(data)], **FAST)
    swift, tok, template, rows = _policy(tiny, args, tmp_path)
    trainer = recipe.make_trainer(args, swift, None, tok, rows, [], tmp_path / "a", "fp32")
    by_prompt = {r["prompt"]: i for i, r in enumerate(rows)}
    for example in preference_rows():
        sft = bridge.tokenize([{"messages": example["messages"]}], tok, template, 1024, "right")[0]
        trained = [t for t in sft["labels"] if t != -100]
        row = trainer.train_dataset[by_prompt[template.prompt(example["messages"][:-1])]]
        assert row["chosen_ids"][: len(trained)] == trained
        assert row["chosen_ids"][len(trained):] in ([], [tok.eos_token_id])  # TRL ends a text answer with eos
        assert row["prompt_ids"] + row["chosen_ids"][: len(trained)] == sft["input_ids"][: len(row["prompt_ids"]) + len(trained)]


def test_resume_continues_exactly(tiny, data, tmp_path):
    common = dict(model=str(tiny), dataset=[str(data)], lr_scheduler_type="constant", warmup_steps=0, save_steps=2,
                  **{**FAST, "per_device_train_batch_size": 2})
    straight = swiftune.rlhf(output_dir=str(tmp_path / "straight"), max_steps=4, **common)
    swiftune.rlhf(output_dir=str(tmp_path / "split"), max_steps=2, **common)
    resumed = swiftune.rlhf(output_dir=str(tmp_path / "split"), max_steps=4, resume=True, **common)
    from safetensors.torch import load_file

    a = load_file(str(adapter_dir(straight.adapter_dir, "default") / "adapter_model.safetensors"))
    b = load_file(str(adapter_dir(resumed.adapter_dir, "default") / "adapter_model.safetensors"))
    initial = load_file(str(adapter_dir(tmp_path / "split" / "checkpoint-2", "default") / "adapter_model.safetensors"))
    assert any(not torch.equal(a[k], initial[k]) for k in a)  # steps 3 and 4 did train
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-6)
    logs = [[r for r in map(json.loads, (run / "logging.jsonl").read_text().splitlines()) if "loss" in r]
            for run in (tmp_path / "straight", tmp_path / "split")]
    assert [r["step"] for r in logs[1]] == [1, 2, 3, 4]
    for x, y in zip(*logs):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-6) and x["rewards/margins"] == pytest.approx(y["rewards/margins"], abs=1e-6)


def test_bad_rows_name_file_line_and_field(tiny, tmp_path):
    rows = preference_rows()
    rows[2] = {"messages": rows[2]["messages"], "rejected_response": ""}
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=r"bad\.jsonl line 3: field 'rejected_response'"):
        swiftune.rlhf(model=str(tiny), dataset=[str(bad)], output_dir=str(tmp_path / "o"), **FAST)
    kto = [{"messages": _chat(q, a), "label": True} for q, a in PAIRS]
    kto[4]["label"] = "maybe"
    with pytest.raises(DataError, match=r"kto\.jsonl line 5: field 'label' must be true or false"):
        swiftune.rlhf(model=str(tiny), dataset=[str(write_jsonl(tmp_path / "kto.jsonl", kto))], rlhf_type="kto",
                      output_dir=str(tmp_path / "o"), **FAST)
    sft_rows = write_jsonl(tmp_path / "sft.jsonl", [{"messages": _chat(q, a)} for q, a in PAIRS])
    with pytest.raises(swiftune.ConfigError, match="dpo trains on preference rows, but the data gives messages"):
        swiftune.rlhf(model=str(tiny), dataset=[str(sft_rows)], output_dir=str(tmp_path / "o"), **FAST)


def test_trl_layouts_read_as_ms_swift_rows():
    def convert(name, row):
        return registries.dataset_adapters.get(name)().convert(row)

    expected = {"messages": _chat("Hello", "Hi there !"), "rejected_response": "No"}
    assert convert("preference", {"messages": expected["messages"], "rejected_response": "No"}) == expected
    assert convert("chosen-rejected", {"prompt": "Hello", "chosen": "Hi there !", "rejected": "No"}) == expected
    assert convert("chosen-rejected", {"prompt": [{"role": "user", "content": "Hello"}],
                                       "chosen": [{"role": "assistant", "content": "Hi there !"}],
                                       "rejected": [{"role": "assistant", "content": "No"}]}) == expected
    implicit = {"chosen": _chat("Hello", "Hi there !"), "rejected": _chat("Hello", "No")}
    assert convert("chosen-rejected", implicit) == expected
    unpaired = {"messages": _chat("Hello", "No"), "label": False}
    assert convert("prompt-completion", {"prompt": "Hello", "completion": "No", "label": 0}) == unpaired
    assert convert("kto", {"messages": _chat("Hello", "No"), "label": "false"}) == unpaired
    prompt = convert("prompt", {"messages": _chat("What is 2 + 3 ?", "five"), "solution": "5"})
    assert prompt == {"messages": [{"role": "user", "content": "What is 2 + 3 ?"}], "columns": {"solution": "5"}}


def test_builtin_rewards():
    accuracy, fmt = registries.rewards.get("accuracy"), registries.rewards.get("format")
    got = accuracy(completions=["so \\boxed{5}", "it is 5.0", "#### 6", "Paris."], solution=["5", "5", "5", "paris"])
    assert got == [1.0, 1.0, 0.0, 1.0]
    assert fmt(completions=["<think>a</think> <answer>5</answer>", "<answer>5</answer>"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="reference answer"):
        accuracy(completions=["5"])


def test_grpo_tiny_run(tiny, tmp_path):
    rows = [{"messages": [{"role": "user", "content": q}], "solution": a} for q, a in PAIRS]
    result = swiftune.rlhf(model=str(tiny), dataset=[str(write_jsonl(tmp_path / "g.jsonl", rows))], rlhf_type="grpo",
                           reward_funcs=["accuracy", "format"], num_generations=2, max_completion_length=6,
                           max_steps=2, output_dir=str(tmp_path / "g"), **{**FAST, "per_device_train_batch_size": 2})
    logged = [json.loads(line) for line in (tmp_path / "g" / "logging.jsonl").read_text().splitlines()]
    assert result.global_step == 2 and {"rewards/accuracy/mean", "rewards/format/mean", "reward"} <= set(logged[0])
    assert (result.adapter_dir / "adapter_model.safetensors").is_file() or any(result.adapter_dir.rglob("*.safetensors"))


@pytest.mark.slow
def test_cli_run_folder_then_infer(tiny, data, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("rlhf", "--rlhf_type", "dpo", "--model", str(tiny), "--dataset", str(data), "--output-dir", str(out),
                   "--max_steps", "2", "--save_steps", "1", "--val_ratio", "0.25", "--beta", "0.2", "--precision", "fp32",
                   "--logging-steps", "1", "--r", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((out / "args.json").read_text())
    assert saved["command"] == "rlhf" and saved["rlhf_type"] == "dpo" and saved["beta"] == 0.2
    assert {"loss.png", "rewards.png", "final", "checkpoint-2", "logging.jsonl"} <= {p.name for p in out.iterdir()}
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    keys = set().union(*logged)
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "eval_rewards/margins"} <= keys
    prompts = write_jsonl(tmp_path / "q.jsonl", [{"query": "Hello"}])
    swiftune.infer(adapter=[str(out)], input=str(prompts), output=str(tmp_path / "a.jsonl"), max_new_tokens=3)
    assert "response" in json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])


@pytest.mark.slow
def test_reward_plugin_by_entry_point_in_grpo(site, tiny, tmp_path):
    listed = swiftune_cli("list", "rewards", site=site)
    assert listed.returncode == 0 and "brevity" in listed.stdout and "accuracy" in listed.stdout
    rows = [{"prompt": q} for q, _ in PAIRS]
    out = tmp_path / "g"
    proc = swiftune_cli("rlhf", "--rlhf-type", "grpo", "--model", str(tiny), "--dataset",
                        str(write_jsonl(tmp_path / "p.jsonl", rows)), "--reward_funcs", "brevity", "--num_generations", "2",
                        "--max_completion_length", "4", "--max_steps", "1", "--per_device_train_batch_size", "2",
                        "--gradient_accumulation_steps", "1", "--val_ratio", "0", "--output_dir", str(out),
                        "--precision", "fp32", "--logging_steps", "1", site=site, OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = json.loads((out / "logging.jsonl").read_text().splitlines()[0])
    assert 0.0 <= first["rewards/brevity/mean"] <= 1.0


def test_position_wise_methods_refuse_prompt_tuners(tiny, data, tmp_path):
    with pytest.raises(swiftune.ConfigError, match="orpo's trainer compares logits .* virtual tokens"):
        swiftune.rlhf(model=str(tiny), dataset=[str(data)], rlhf_type="orpo", tuner="prompt",
                      output_dir=str(tmp_path / "o"), **FAST)
    with pytest.raises(swiftune.ConfigError, match="--ref_model: orpo takes no reference model"):
        swiftune.rlhf(model=str(tiny), dataset=[str(data)], rlhf_type="orpo", ref_model=str(tiny),
                      output_dir=str(tmp_path / "p"), **FAST)


def test_sampling_split_and_val_dataset(tiny, data):
    from transformers import AutoTokenizer

    from swiftune.cli.args import from_python
    from swiftune.data import get_renderer

    template = get_renderer(AutoTokenizer.from_pretrained(tiny))
    sampled = RlhfArguments(model=str(tiny), dataset=[f"{data}#5"], val_dataset=[f"{data}#2"], **FAST)
    train, val = recipe.load_rows(sampled, template)
    assert (len(train), len(val)) == (5, 2) and {"prompt", "chosen", "rejected"} == set(train[0])
    split = from_python(RlhfArguments, None, model=str(tiny), dataset=[str(data)], split_dataset_ratio=0.25)
    train, val = recipe.load_rows(split, template)
    assert (len(train), len(val)) == (6, 2)
