"""A checkpoint folder written by ms-swift loads in infer and export with nothing else given.

The fixture follows ms-swift's documented layout: ``output/v0-<time>/checkpoint-N/`` holding PEFT's
adapter files (written here by PEFT itself, as ms-swift does), its ``args.json`` (model,
model_dir, template, system, train_type / tuner_type ...), ``additional_config.json`` and the
trainer's state files, which swiftune must never open (the pickles here would fail if it did).
PEFT is the oracle: the rebuilt model's logits equal PEFT's on the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import swiftune
from swiftune.errors import ConfigError

from cli_fixtures import ensure_model, read_jsonl, run_cli

SYSTEM = "You are a pirate ."


def ms_swift_checkpoint(root: Path, base: Path, *, version_key: str = "train_type", model_id: str | None = None,
                        template: str = "chatml", train_type: str = "lora") -> Path:
    """``root/v0-20250101-120000/checkpoint-4`` as ms-swift writes it after LoRA training."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = root / "v0-20250101-120000"
    ckpt = run / "checkpoint-4"
    ckpt.mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "down_proj"],
                                                  lora_dropout=0.05, task_type="CAUSAL_LM"))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # a trained adapter: B is no longer zero
                param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
    peft_model.save_pretrained(ckpt)
    args = {
        "model": model_id or str(base), "model_type": "llama", "model_revision": None, "task_type": "causal_lm",
        "torch_dtype": "float32", "template": template, "system": SYSTEM, "max_length": 2048,
        version_key: train_type, "adapters": [], "lora_rank": 4, "lora_alpha": 32, "lora_dropout": 0.05,
        "target_modules": ["q_proj", "v_proj", "down_proj"], "dataset": ["swift/self-cognition#500"],
        "model_author": ["swift"], "model_name": ["swift-robot"], "output_dir": str(run),
        "model_dir": str(base), "use_hf": False, "quant_bits": None,
    }
    for folder in (run, ckpt):  # ms-swift keeps args.json in the run folder and in every checkpoint
        (folder / "args.json").write_text(json.dumps(args, indent=2))
    (ckpt / "additional_config.json").write_text(json.dumps({"lora_dtype": None, "lorap_lr_ratio": None}))
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 4, "log_history": []}))
    for pickle_file in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        (ckpt / pickle_file).write_bytes(b"not a pickle: opening it is a failure")
    return ckpt


def peft_logits(base: Path, ckpt: Path, ids: torch.Tensor, merged: bool = False) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), ckpt).eval()
    if merged:
        model = model.merge_and_unload()
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return ensure_model(tmp_path_factory.mktemp("ms-swift-base"))


def test_rebuild_reads_ms_swift_checkpoint(tiny, tmp_path) -> None:
    from swiftune.recipes.rebuild import rebuild

    ckpt = ms_swift_checkpoint(tmp_path, tiny)
    built = rebuild([str(ckpt)])
    assert Path(built.base) == tiny and built.run_args["system"] == SYSTEM
    assert built.run_args["trained_by"] == "ms-swift" and built.template.name == "chatml"
    ids = torch.randint(3, 40, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = built.model(input_ids=ids).logits
        with built.model.disable_adapters():
            plain = built.model(input_ids=ids).logits
    expected = peft_logits(tiny, ckpt, ids)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert (ours - plain).abs().max() > 1e-3  # the adapter changes the outputs


def test_ms_swift_4_names_and_a_hub_id_with_local_model_dir(tiny, tmp_path) -> None:
    from swiftune.recipes.rebuild import locate_adapter

    ckpt = ms_swift_checkpoint(tmp_path, tiny, version_key="tuner_type", model_id="Qwen/Qwen2.5-7B-Instruct",
                               template="qwen2_5")
    folder, run_args = locate_adapter(ckpt)
    assert folder == ckpt
    assert run_args["model"] == str(tiny)  # model_dir is on this machine: no download
    assert (run_args["template"], run_args["tuner"]) == ("qwen2_5", "lora")


def test_infer_batch_uses_the_checkpoint_system_prompt(tiny, tmp_path) -> None:
    ckpt = ms_swift_checkpoint(tmp_path, tiny)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"query": "Hello"}) + "\n" + json.dumps({"query": "Who made you ?"}) + "\n")
    out = tmp_path / "result.jsonl"
    rows = swiftune.infer(adapters=str(ckpt), val_dataset=str(prompts), result_path=str(out),
                          max_new_tokens=4, temperature=0, stream=False, infer_backend="transformers")
    assert len(rows) == 2 and len(read_jsonl(out)) == 2

    from swiftune.recipes.arguments import InferArguments
    from swiftune.recipes.infer import build_generator

    args = InferArguments(adapter=[str(ckpt)])
    generator = build_generator(args)
    assert args.system == SYSTEM
    prompt = generator.tokenizer.decode(generator.encode([{"role": "system", "content": args.system},
                                                          {"role": "user", "content": "Hello"}]))
    assert prompt.startswith("<|im_start|> system You are a")


def test_export_merges_an_ms_swift_checkpoint_from_the_command_line(tiny, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    ckpt = ms_swift_checkpoint(tmp_path, tiny)
    proc = run_cli("export", "--adapters", str(ckpt), "--merge_lora", "true", timeout=300)  # ms-swift's line as is
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "v0-20250101-120000-checkpoint-4-merged"  # beside the run folder, never inside it
    ids = torch.randint(3, 40, (1, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out).eval()(input_ids=ids).logits
    torch.testing.assert_close(merged, peft_logits(tiny, ckpt, ids, merged=True), rtol=1e-4, atol=1e-4)


def test_full_checkpoint_says_to_pass_it_as_model(tiny, tmp_path) -> None:
    from swiftune.recipes.rebuild import locate_adapter

    ckpt = tmp_path / "v0-1" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "args.json").write_text(json.dumps({"model": str(tiny), "train_type": "full", "model_type": "llama"}))
    with pytest.raises(ConfigError, match="full fine-tuning checkpoint .* pass it as --model"):
        locate_adapter(ckpt)


def test_ms_swift_template_names(tiny) -> None:
    from swiftune.recipes import bridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    messages = [{"role": "user", "content": "Hello"}]
    assert bridge.resolve_template("qwen3", model, tok).prompt(messages) == \
        bridge.resolve_template("chatml", model, tok).prompt(messages)
    assert bridge.resolve_template("qwen2", model, tok).prompt(messages) == \
        bridge.resolve_template("qwen", model, tok).prompt(messages)
    assert "You are Qwen, created by Alibaba Cloud" in bridge.resolve_template("qwen2_5", model, tok).prompt(messages)


@pytest.mark.slow
def test_ms_swift_quickstart_command_lines_run_unchanged(tiny, tmp_path) -> None:
    """ms-swift's README quickstart (sft, infer, export), pointed at a local model and data."""
    from cli_fixtures import ensure_data

    data = ensure_data(tmp_path)
    out = tmp_path / "output"
    proc = run_cli(
        "sft", "--model", str(tiny), "--train_type", "lora",
        "--dataset", f"{data}#40", "swift/self-cognition#40",
        "--torch_dtype", "float32", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "1", "--per_device_eval_batch_size", "1",
        "--learning_rate", "1e-4", "--lora_rank", "8", "--lora_alpha", "32", "--target_modules", "all-linear",
        "--gradient_accumulation_steps", "16", "--eval_steps", "50", "--save_steps", "2", "--save_total_limit", "2",
        "--logging_steps", "5", "--max_length", "2048", "--output_dir", str(out),
        "--system", "You are a helpful assistant.", "--warmup_ratio", "0.05",
        "--dataloader_num_workers", "0", "--model_author", "swift", "--model_name", "swift-robot",
        "--max_steps", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_args = json.loads((out / "args.json").read_text())
    assert run_args["tuner_args"]["r"] == 8 and run_args["tuner_args"]["lora_alpha"] == 32
    assert run_args["precision"] == "fp32" and run_args["system"] == "You are a helpful assistant."

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"query": "Hello"}) + "\n")
    result = tmp_path / "result.jsonl"
    proc = run_cli("infer", "--adapters", str(out / "checkpoint-2"), "--stream", "true", "--temperature", "0",
                   "--max_new_tokens", "8", "--val_dataset", str(prompts), "--result_path", str(result), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_jsonl(result)) == 1
    proc = run_cli("export", "--adapters", str(out / "checkpoint-2"), "--merge_lora", "true", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "output-checkpoint-2-merged" / "config.json").is_file()
