"""The 'restuning' tuner: no autograd graph through the backbone (and the memory that saves),
the bypass under a KV cache and logits_to_keep, several ladders, LoRA alongside, state, plain modules.

The full-size memory measurement (SmolLM2 shape, seq 512, batch 8: peak RSS of one training step,
restuning vs LoRA, each in a fresh process) takes a few minutes on 2 cores, so it runs on request:
``SWIFTUNE_MEMORY_BENCH=1 .venv/bin/python -m pytest tests/test_tuner_restuning.py -k peak -s``.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch

from swiftune import AdapterLoadError, ConfigError, Swift
from swiftune.testing import conformance_tests, model_case
from swiftune.testing.conformance import logits_of, train_steps
from swiftune.tuners.restuning.layer import ResTuningHead

test_restuning_on_plain_mlp = conformance_tests(
    "restuning", models=["mlp"], config={"target_modules": ["fc1", "fc2"], "head": "head"}
)


def _smollm_shaped(layers: int, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                      num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, use_cache=False)  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def test_backbone_builds_no_autograd_graph():
    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "restuning"})
    model.train()
    outputs = []
    for block in model.model.model.layers:
        block.register_forward_hook(lambda m, a, out: outputs.append(out))
    loss = case.loss(model, case.batch(0))
    assert len(outputs) == 2 and all(o.grad_fn is None and not o.requires_grad for o in outputs)
    loss.backward()
    ladder = dict(model.tuners["default"].named_trainable_parameters(model.model))
    assert all(p.grad is not None for p in ladder.values())
    assert all(p.grad is None for n, p in model.named_parameters() if id(p) not in {id(q) for q in ladder.values()})


def _saved_activation_bytes(tuner: str) -> int:
    """Bytes autograd keeps for backward in one training forward (parameters not counted)."""
    model = Swift.prepare(_smollm_shaped(layers=4, vocab=4096), {"tuner": tuner}).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 4096, (2, 128), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids).loss.backward()
    return total


def test_saved_activations_are_a_fraction_of_loras():
    """SmolLM2 widths, 4 layers: LoRA keeps every block's activations for backward, the ladder
    keeps one normalised hidden state per block plus its own small tensors (measured ~0.16x)."""
    ratio = _saved_activation_bytes("restuning") / _saved_activation_bytes("lora")
    assert ratio < 0.3, f"restuning keeps {ratio:.2f}x the activation bytes of LoRA"


_PEAK_SCRIPT = r"""
import json, sys, torch
torch.set_num_threads(2)
sys.path.insert(0, sys.argv[2])
from test_tuner_restuning import _smollm_shaped
from swiftune import Swift
def rss(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) / 1024
model = Swift.prepare(_smollm_shaped(layers=30, vocab=49152), {"tuner": sys.argv[1]}).train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, 49152, (8, 512))
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from here
before = rss("VmRSS")
model(input_ids=ids, labels=ids).loss.backward()
opt.step()
print(json.dumps({"before_mb": before, "peak_mb": rss("VmHWM")}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SWIFTUNE_MEMORY_BENCH"), reason="set SWIFTUNE_MEMORY_BENCH=1 (minutes)")
def test_peak_training_memory_on_the_smollm2_shape():
    peaks = {}
    for tuner in ("restuning", "lora"):
        out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, tuner, os.path.dirname(__file__)],
                             check=True, capture_output=True, text=True)  # fmt: skip
        peaks[tuner] = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = peaks["restuning"]["peak_mb"] / peaks["lora"]["peak_mb"]
    print(f"\npeak RSS of one training step: {peaks}; restuning / lora = {ratio:.3f}")
    assert ratio <= 0.6


# -- forward behaviour -------------------------------------------------------------------------------------
def _trained(case, config=None, seed=0):
    torch.manual_seed(seed)
    model = Swift.prepare(case.build(), config or {"tuner": "restuning"})
    train_steps(model, case, 5, seed=seed)
    return model


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cached_steps_and_logits_to_keep_equal_the_full_forward(family):
    case = model_case(family)
    model = _trained(case)
    ids = case.batch(0).inputs["input_ids"]
    with torch.no_grad():
        full = model(input_ids=ids).logits
        assert torch.allclose(model(input_ids=ids, logits_to_keep=1).logits, full[:, -1:], atol=1e-6)
        out = model(input_ids=ids[:, :5], use_cache=True)
        steps = [out.logits]
        for t in range(5, ids.shape[1]):
            out = model(input_ids=ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits)
        positions = torch.tensor([0, 3])  # a tensor of positions, as sft's answer-only logits pass
        assert torch.allclose(model(input_ids=ids, logits_to_keep=positions).logits, full[:, positions], atol=1e-6)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    with torch.no_grad(), model.disable_adapters():
        assert not torch.allclose(model(input_ids=ids).logits, full, atol=1e-3)


def test_two_active_ladders_add_their_bypasses():
    """The head is linear, so each ladder's change of the logits adds up exactly (up to rounding)."""
    case = model_case("llama")
    model = _trained(case)
    model.add_adapter("second", {"tuner": "restuning", "bypass_dim": 8}, active=False)
    model.set_active_adapters(["second"])
    train_steps(model, case, 5, seed=3)
    base = logits_of(case.build(), case)
    model.set_active_adapters(["default"])
    first = logits_of(model, case) - base
    model.set_active_adapters(["second"])
    second = logits_of(model, case) - base
    model.set_active_adapters(["default", "second"])
    both = logits_of(model, case) - base
    assert first.abs().max() > 1e-2 and second.abs().max() > 1e-2
    assert torch.allclose(both, first + second, atol=1e-5)


def test_ladder_gradients_never_reach_lora_in_the_backbone():
    """With LoRA training the backbone too, the bypass stream still depends on no LoRA parameter."""
    case = model_case("llama")
    torch.manual_seed(0)
    model = Swift.prepare(case.build(), {"default": {"tuner": "lora"}, "bypass": {"tuner": "restuning"}})
    train_steps(model, case, 3)
    head = model.model.lm_head
    ladder = head.restuning["bypass"]
    streams = []
    head.register_forward_pre_hook(lambda m, a: streams.append(ladder._stream))
    loss = case.loss(model, case.batch(0))
    lora = [p for _, p in model.tuners["default"].named_trainable_parameters(model.model)]
    own = [p for _, p in model.tuners["bypass"].named_trainable_parameters(model.model)]
    assert streams[0] is not None and streams[0].requires_grad
    assert all(g is None for g in torch.autograd.grad(streams[0].sum(), lora, allow_unused=True, retain_graph=True))
    assert all(g is not None for g in torch.autograd.grad(loss, lora + own))  # both still train from the loss


def test_saves_only_the_ladder_and_checks_its_shape():
    case = model_case("gpt2")
    model = _trained(case)
    state = model.adapter_state_dict("default")
    assert all(k.startswith("lm_head.restuning.") for k in state)
    assert sum(v.numel() for v in state.values()) == model.trainable_summary().trainable
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        loaded = Swift.from_pretrained(case.build(), tmp)
        assert torch.equal(logits_of(loaded, case), logits_of(model, case))
        fewer = Swift.prepare(case.build(), {"tuner": "restuning", "target_modules": ["transformer.h.1"]})
        with pytest.raises(AdapterLoadError, match="lm_head.restuning.rungs.1"):
            fewer.tuners["default"].load_state_dict(fewer.model, state)


def test_remove_restores_the_plain_model():
    case = model_case("llama")
    model = _trained(case)
    plain = model.unload()
    assert not any(isinstance(m, ResTuningHead) for m in plain.modules())
    assert not any(m._forward_hooks for m in plain.modules()) and not plain._forward_pre_hooks
    assert torch.equal(logits_of(plain, case), logits_of(case.build(), case))


def test_config_errors():
    with pytest.raises(ConfigError, match="restuning: bypass_dim"):
        Swift.prepare(model_case("llama").build(), {"tuner": "restuning", "bypass_dim": 0})
    with pytest.raises(ConfigError, match="head='nope' must match exactly one module"):
        Swift.prepare(model_case("llama").build(), {"tuner": "restuning", "head": "nope"})
    with pytest.raises(ConfigError, match="no output embeddings"):
        Swift.prepare(model_case("mlp").build(), {"tuner": "restuning", "target_modules": ["fc1"]})
