"""``full``: every base parameter trains (never other adapters' tensors), the saved folder is a
transformers model (config.json + safetensors shards) that plain transformers and swiftune load, and
the honest limits raise or warn."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from swiftune import Swift
from swiftune.errors import ConfigError
from swiftune.testing import model_case
from swiftune.testing.conformance import logits_of, train_steps


def test_every_base_parameter_trains_and_is_saved(tmp_path):
    case = model_case("gpt2")
    base = case.build()
    names = {n for n, _ in base.named_parameters()}
    model = Swift.prepare(base, {"tuner": "full"})
    assert model.trainable_summary().percent == 100.0
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    train_steps(model, case, 3)
    moved = {n for n, p in base.named_parameters() if not torch.equal(p, before[n])}
    assert len(moved) > 0.9 * len(names), f"only {len(moved)} of {len(names)} parameters moved"
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert set(saved) == names  # transformers' own parameter names (gpt2 ties lm_head: saved once)
    assert all(torch.equal(saved[n], p) for n, p in base.named_parameters())


@pytest.mark.parametrize("max_shard_size", ["2GB", "20KB"])
def test_saved_folder_is_a_transformers_model(tmp_path, max_shard_size):
    from transformers import AutoModelForCausalLM

    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "full", "max_shard_size": max_shard_size})
    train_steps(model, case, 3)
    adapted = logits_of(model, case)
    model.save_pretrained(tmp_path / "run")
    shards = sorted(p.name for p in (tmp_path / "run" / "model").glob("model*.safetensors"))
    if max_shard_size == "20KB":
        assert len(shards) > 1 and (tmp_path / "run" / "model" / "model.safetensors.index.json").is_file(), shards
    else:
        assert shards == ["model.safetensors"]
    # 1. plain transformers loads the folder as it is
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model").eval()
    torch.testing.assert_close(logits_of(plain, case), adapted, atol=0, rtol=0)
    # 2. swiftune loads it back onto a fresh base; merge_and_unload (what `swiftune export` does) too
    merged = Swift.from_pretrained(case.build(), tmp_path / "run").merge_and_unload()
    assert torch.equal(logits_of(merged, case), adapted)
    # 3. saving again with other shard sizes leaves no stale shard behind
    Swift.prepare(case.build(), {"tuner": "full"}).save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run" / "model").glob("model*.safetensors*")) == ["model.safetensors"]


def test_does_not_train_other_adapters_tensors(tmp_path):
    case = model_case("qwen2")
    model = Swift.prepare(case.build(), {"lora": {"tuner": "lora", "r": 2}, "full": {"tuner": "full"}})
    full = {id(p) for _, p in model.tuners["full"].named_trainable_parameters(model.model)}
    lora = {id(p) for _, p in model.tuners["lora"].named_trainable_parameters(model.model)}
    assert full and lora and not full & lora
    assert len(full) == len(list(case.build().parameters()))
    keys = set(model.adapter_state_dict("full"))
    assert keys == {n for n, _ in case.build().named_parameters()}  # logical names, not ...base_layer...
    train_steps(model, case, 3)
    model.save_pretrained(tmp_path)
    loaded = Swift.from_pretrained(case.build(), tmp_path, adapter_names=["lora", "full"])
    torch.testing.assert_close(logits_of(loaded, case), logits_of(model, case), atol=1e-6, rtol=1e-6)


def test_freeze_parameters():
    case = model_case("llama")
    base = case.build()
    embed = base.model.embed_tokens.weight.detach().clone()
    model = Swift.prepare(base, {"tuner": "full", "freeze_parameters": r"model\.embed_tokens\..*"})
    assert not base.model.embed_tokens.weight.requires_grad and base.lm_head.weight.requires_grad
    train_steps(model, case, 3)
    assert torch.equal(base.model.embed_tokens.weight, embed)
    assert "model.embed_tokens.weight" in model.adapter_state_dict("default")  # still saved
    with pytest.raises(ConfigError, match="full.*freeze_parameters.*leaves no parameter"):
        Swift.prepare(case.build(), {"tuner": "full", "freeze_parameters": ".*"})


def test_one_full_adapter_per_model_and_disabling_warns():
    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "full"})
    with pytest.raises(ConfigError, match="already has the full adapter 'default'"):
        model.add_adapter("again", {"tuner": "full"})
    train_steps(model, case, 3)
    adapted = logits_of(model, case)
    with pytest.warns(UserWarning, match="full fine-tuning trains the model's own weights"):
        with model.disable_adapters():
            assert torch.equal(logits_of(model, case), adapted)  # no frozen base to go back to
    model.set_active_adapters([])  # deactivated: nothing trains, the outputs stay the fine-tuned ones
    assert not any(p.requires_grad for p in model.parameters())
    assert torch.equal(logits_of(model, case), adapted)
    model.set_active_adapters(["default"])
    assert all(p.requires_grad for p in model.parameters())
    model.delete_adapter("default")
    model.add_adapter("again", {"tuner": "full"})  # allowed once the first is gone
    assert torch.equal(logits_of(model, case), adapted)


@pytest.mark.slow
def test_cli_full_run_exports_a_plain_transformers_model(tmp_path, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, run_cli
    from swiftune.recipes.rebuild import rebuild

    root = tmp_path_factory.getbasetemp() / "cli-assets"  # shared with the other CLI tests
    model_dir, data = ensure_model(root), ensure_data(root)
    run = tmp_path / "run"
    proc = run_cli("sft", "--model", str(model_dir), "--dataset", f"{data}#8", "--output-dir", str(run),
                   "--tuner", "full", "--max-steps", "2", "--save-steps", "2", "--val-ratio", "0", *TRAIN_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("export", "--adapter", str(run), "--output", str(tmp_path / "plain"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad():
        tuned = rebuild([str(run)]).model(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "plain").eval()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(model_dir).eval()(input_ids=ids).logits
    torch.testing.assert_close(plain, tuned, atol=1e-5, rtol=1e-5)
    assert (plain - base).abs().max() > 1e-4, "two full fine-tuning steps changed nothing"

