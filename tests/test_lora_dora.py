"""DoRA (``use_dora``) on the lora and qlora tuners, with PEFT 0.21 as the oracle.

Adapters start from random (non-zero) A and B (``init_lora_weights=False``), so the magnitude, the
direction and every key matter; logits, losses and gradients are compared with PEFT's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")

from swiftune import Swift  # noqa: E402
from swiftune.errors import ConfigError  # noqa: E402
from swiftune.testing import conformance_tests  # noqa: E402
from swiftune.tuners.lora.layer import LoraLinear  # noqa: E402

from tiny_lms import convnet, gpt2, llama, qwen2  # noqa: E402

IDS = torch.tensor([[5, 9, 17, 33, 2, 60, 41], [7, 7, 12, 50, 3, 28, 11]])
ATOL = 1e-5

# The whole conformance suite with DoRA on (merge, save / load, two adapters, generate, ...).
test_dora_conformance = conformance_tests("lora", models=["llama", "gpt2", "mlp"], config={"use_dora": True})
test_dora_conformance_conv_embedding = conformance_tests(
    "lora", models=["conv", "llama"], config={"use_dora": True, "target_modules": ["conv1", "conv2", "fc1", "embed_tokens", "q_proj"]}
)
test_qlora_dora_conformance = conformance_tests(
    "qlora", models=["llama"], config={"use_dora": True}, checks=["identity", "save_load", "merge", "two_adapters"]
)


def logits(model: nn.Module, ids: torch.Tensor = IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


CASES: dict[str, tuple[Callable[[], nn.Module], dict[str, Any]]] = {
    "llama-all-linear": (llama, {"target_modules": "all-linear", "r": 4, "lora_alpha": 16}),
    "qwen2-bias-rslora": (qwen2, {"target_modules": ["q_proj", "v_proj"], "use_rslora": True, "bias": "lora_only"}),
    "gpt2-conv1d": (gpt2, {"target_modules": ["c_attn", "c_fc"]}),
    "llama-embedding": (llama, {"target_modules": ["embed_tokens", "gate_proj"]}),
    "convnet-conv2d-embedding": (convnet, {"target_modules": ["emb", "conv", "pointwise", "head"], "r": 3, "bias": "all"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dora_adapter_loads_in_peft_and_back(case: str, tmp_path: Path) -> None:
    make, fields = CASES[case]
    base = logits(make())
    torch.manual_seed(0)
    swift = Swift.prepare(make(), {"tuner": "lora", "use_dora": True, "init_lora_weights": False, **fields})
    adapted = logits(swift)
    assert (adapted - base).abs().max() > 1e-2  # the adapter does something
    keys = swift.adapter_state_dict("default")
    magnitudes = [k for k in keys if k.endswith(".lora_magnitude_vector")]
    assert magnitudes and all(keys[k].squeeze().ndim == 1 for k in magnitudes)  # one length per output
    swift.save_pretrained(tmp_path / "swift")
    loaded = peft.PeftModel.from_pretrained(make(), tmp_path / "swift")
    assert loaded.peft_config["default"].use_dora
    torch.testing.assert_close(logits(loaded), adapted, atol=ATOL, rtol=0)

    torch.manual_seed(1)
    theirs = peft.get_peft_model(make(), peft.LoraConfig(use_dora=True, init_lora_weights=False, **fields))
    theirs.save_pretrained(tmp_path / "peft")
    ours = Swift.from_pretrained(make(), tmp_path / "peft")
    assert ours.configs["default"].use_dora
    torch.testing.assert_close(logits(ours), logits(theirs), atol=ATOL, rtol=0)


def test_dora_magnitude_starts_at_the_row_norms_as_in_peft() -> None:
    """Default init (B = 0): m = ||W|| per output row and the model is unchanged; PEFT gives the same m."""
    base = logits(llama())
    swift = Swift.prepare(llama(), {"tuner": "lora", "use_dora": True, "target_modules": ["q_proj"]})
    torch.testing.assert_close(logits(swift), base, atol=1e-6, rtol=0)
    theirs = peft.get_peft_model(llama(), peft.LoraConfig(use_dora=True, target_modules=["q_proj"]))
    q = swift.model.model.layers[0].self_attn.q_proj
    peft_m = theirs.base_model.model.model.layers[0].self_attn.q_proj.lora_magnitude_vector["default"].weight
    torch.testing.assert_close(q.lora_magnitude_vector["default"], peft_m, atol=1e-6, rtol=0)
    torch.testing.assert_close(q.lora_magnitude_vector["default"], q.get_base_layer().weight.norm(dim=1))


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_dora_training_step_matches_peft(dropout: float, tmp_path: Path) -> None:
    """Train mode: the same loss and the same gradients of A, B and m (dropout draws the same masks)."""
    fields = {"target_modules": ["q_proj", "v_proj", "down_proj"], "lora_dropout": dropout, "r": 4}
    torch.manual_seed(0)
    theirs = peft.get_peft_model(llama(), peft.LoraConfig(use_dora=True, init_lora_weights=False, **fields))
    theirs.save_pretrained(tmp_path)
    ours = Swift.from_pretrained(llama(), tmp_path, is_trainable=True)
    losses, grads = [], []
    for model in (theirs, ours):
        model.train()
        torch.manual_seed(3)
        loss = model(input_ids=IDS, labels=IDS).loss
        loss.backward()
        losses.append(loss.item())
        grads.append({_peft_name(n): p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    assert set(grads[0]) == set(grads[1]) and any("magnitude" in n for n in grads[0])
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-4, msg=name)


def _peft_name(name: str) -> str:
    """One spelling for both libraries' parameter names: PEFT's module path, ``.weight`` of m dropped."""
    name = name.removeprefix("base_model.model.") if name.startswith("base_model.") else name.removeprefix("model.")
    return name.replace("lora_magnitude_vector.default.weight", "lora_magnitude_vector.default")


def test_several_dora_adapters_add_up_and_merge_exactly() -> None:
    """Two DoRA adapters and a plain LoRA one active together: merging all, or some, keeps the logits;
    unmerging gives the base back. (Each DoRA term is taken against the unmerged base weight.)"""
    torch.manual_seed(0)
    model = Swift.prepare(llama(), {
        "a": {"tuner": "lora", "use_dora": True, "init_lora_weights": False},
        "b": {"tuner": "lora", "use_dora": True, "init_lora_weights": False, "r": 4, "target_modules": ["q_proj", "o_proj"]},
        "c": {"tuner": "lora", "init_lora_weights": False, "target_modules": ["q_proj"]},
    })  # fmt: skip
    base = logits(llama())
    together = logits(model)
    # They add up: each adapter's change of a layer's output is independent of the others'.
    q = model.model.model.layers[0].self_attn.q_proj
    x = torch.randn(3, 32)
    with torch.no_grad():
        outs = {}
        for names in (["a"], ["b"], ["c"], ["a", "b", "c"]):
            model.set_active_adapters(names)
            outs["".join(names)] = q(x)
        plain = q.get_base_layer()(x)
    torch.testing.assert_close(outs["abc"] - plain, sum(outs[n] - plain for n in "abc"), atol=1e-6, rtol=0)

    model.set_active_adapters(["a", "b", "c"])
    model.merge_adapter()
    torch.testing.assert_close(logits(model), together, atol=1e-5, rtol=0)
    model.unmerge_adapter()
    with model.disable_adapters():
        torch.testing.assert_close(logits(model), base, atol=1e-5, rtol=0)
    # Merge one, run the others unmerged on top of it, then merge the rest.
    model.set_active_adapters(["b"])
    model.merge_adapter()
    model.set_active_adapters(["a", "b", "c"])
    torch.testing.assert_close(logits(model), together, atol=1e-5, rtol=0)
    plain_model = model.merge_and_unload()
    assert not any(isinstance(m, LoraLinear) for m in plain_model.modules())
    torch.testing.assert_close(logits(plain_model), together, atol=1e-5, rtol=0)


def test_several_dora_adapters_merge_exactly_on_conv2d_and_embedding() -> None:
    targets = ["emb", "conv", "pointwise", "head"]
    torch.manual_seed(0)
    model = Swift.prepare(convnet(), {
        "a": {"tuner": "lora", "use_dora": True, "init_lora_weights": False, "target_modules": targets, "r": 2},
        "b": {"tuner": "lora", "use_dora": True, "init_lora_weights": False, "target_modules": targets, "r": 3},
        "c": {"tuner": "lora", "init_lora_weights": False, "target_modules": targets},
    })  # fmt: skip
    together = logits(model)
    model.set_active_adapters(["b"])
    model.merge_adapter()
    model.set_active_adapters(["a", "b", "c"])
    torch.testing.assert_close(logits(model), together, atol=1e-5, rtol=1e-6)
    model.merge_adapter()
    torch.testing.assert_close(logits(model), together, atol=1e-5, rtol=1e-6)
    model.unmerge_adapter()
    with model.disable_adapters():
        torch.testing.assert_close(logits(model), logits(convnet()), atol=1e-6, rtol=0)


def test_dora_refuses_conv_padding_it_cannot_reproduce() -> None:
    model = convnet()
    model.conv.padding_mode = "reflect"
    with pytest.raises(ConfigError, match="use_dora: 'conv' is a Conv2d with padding_mode='reflect'"):
        Swift.prepare(model, {"tuner": "lora", "use_dora": True, "target_modules": ["conv", "head"]})
    assert type(model.conv) is nn.Conv2d  # nothing was wrapped


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_dora_conv2d_and_embedding_training_step_match_peft(dropout: float, tmp_path: Path) -> None:
    fields = {"target_modules": ["emb", "conv", "pointwise"], "r": 3, "lora_dropout": dropout}
    torch.manual_seed(0)
    theirs = peft.get_peft_model(convnet(), peft.LoraConfig(use_dora=True, init_lora_weights=False, **fields))
    theirs.save_pretrained(tmp_path)
    ours = Swift.from_pretrained(convnet(), tmp_path, is_trainable=True)
    conv_m = ours.model.conv.lora_magnitude_vector["default"]
    assert conv_m.shape == (1, 6, 1, 1) and ours.model.emb.lora_magnitude_vector["default"].shape == (8,)  # PEFT's shapes
    results = []
    for model in (theirs, ours):
        model.train()
        torch.manual_seed(3)
        out = model(input_ids=IDS).logits
        out.square().mean().backward()
        grads = {_peft_name(n): p.grad for n, p in model.named_parameters() if p.requires_grad}
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-6, rtol=1e-5)
    assert set(results[0][1]) == set(results[1][1])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_dora_magnitude_follows_the_adapter_dtype() -> None:
    """On a bf16 base the adapter (and m) are fp32; the forward stays bf16 and m gets a gradient."""
    model = Swift.prepare(llama().to(torch.bfloat16), {"tuner": "lora", "use_dora": True, "target_modules": ["q_proj"]})
    q = model.model.model.layers[0].self_attn.q_proj
    m = q.lora_magnitude_vector["default"]
    assert m.dtype == q.lora_A["default"].weight.dtype == torch.float32
    model.train()
    out = model(input_ids=IDS, labels=IDS)
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    assert m.grad is not None and m.grad.dtype == torch.float32 and m.grad.abs().sum() > 0


# -- QLoRA -----------------------------------------------------------------------------------------------
def test_qlora_dora_merges_and_loads_in_peft_on_the_same_4bit_base(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    fields = {"target_modules": ["q_proj", "down_proj"], "init_lora_weights": False}
    torch.manual_seed(0)
    model = Swift.prepare(llama(hidden=64, kv_heads=4), {"tuner": "qlora", "use_dora": True, **fields})
    adapted = logits(model)
    model.save_pretrained(tmp_path)
    # The same 4-bit base without the adapter: swiftune's quantization of the same float model.
    base = Swift.prepare(llama(hidden=64, kv_heads=4), {"tuner": "qlora", **fields}).unload()
    theirs = peft.PeftModel.from_pretrained(base, tmp_path)
    torch.testing.assert_close(logits(theirs), adapted, atol=ATOL, rtol=0)
    merged = model.merge_and_unload()
    torch.testing.assert_close(logits(merged), adapted, atol=1e-4, rtol=0)


def test_dora_keeps_its_frozen_weights_in_full_precision_under_sft() -> None:
    """DoRA reads the frozen weight (its norms): sft must not store it in bf16 (cast_frozen_linears)."""
    from swiftune.testing.conformance import tuner_instance

    assert tuner_instance({"tuner": "lora"}).calls_frozen_linears_only
    assert not tuner_instance({"tuner": "lora", "use_dora": True}).calls_frozen_linears_only
    assert not tuner_instance({"tuner": "qlora", "use_dora": True}).calls_frozen_linears_only
