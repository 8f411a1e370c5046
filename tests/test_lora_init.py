"""LoRA's ``init_lora_weights`` variants against PEFT 0.21: the same A, B and residual base weight
for the same seed, the model's output unchanged at the start (PiSSA / OLoRA move a rank-r part of
the weight into the adapter), and saved PiSSA adapters loading across the two libraries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")

from swiftune import Swift, parse_config  # noqa: E402
from swiftune.errors import ConfigError  # noqa: E402
from swiftune.testing import conformance_tests  # noqa: E402

from tiny_lms import gpt2, llama  # noqa: E402

IDS = torch.tensor([[5, 9, 17, 33, 2, 60, 41], [7, 7, 12, 50, 3, 28, 11]])
FIELDS = {"target_modules": ["q_proj", "v_proj", "down_proj"], "r": 4, "lora_alpha": 8}


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def q_proj(model: nn.Module) -> nn.Module:
    return model.get_base_model().model.layers[0].self_attn.q_proj if hasattr(model, "get_base_model") else (
        model.model.model.layers[0].self_attn.q_proj
    )  # fmt: skip


@pytest.mark.parametrize("init", [True, "gaussian", False, "pissa", "pissa_niter_3", "olora"])
def test_init_equals_peft_for_the_same_seed(init: bool | str) -> None:
    torch.manual_seed(7)
    ours = Swift.prepare(llama(), {"tuner": "lora", "init_lora_weights": init, **FIELDS})
    torch.manual_seed(7)
    theirs = peft.get_peft_model(llama(), peft.LoraConfig(init_lora_weights=init, **FIELDS))
    mine, peft_layer = q_proj(ours), q_proj(theirs)
    for attr in ("lora_A", "lora_B"):
        assert torch.equal(getattr(mine, attr)["default"].weight, getattr(peft_layer, attr)["default"].weight), attr
    assert torch.equal(mine.get_base_layer().weight, peft_layer.get_base_layer().weight)  # residual (or untouched)
    torch.testing.assert_close(logits(ours), logits(theirs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("init", ["pissa", "olora"])
@pytest.mark.parametrize("make", [llama, gpt2], ids=["llama", "gpt2-conv1d"])
def test_weight_based_inits_keep_the_output_and_move_the_principal_part(init: str, make) -> None:
    """Base + adapter == the original model; the base alone is the residual; A, B are the SVD / QR factors."""
    original = make()
    fields = {"target_modules": ["c_attn", "c_fc", "c_proj"]} if make is gpt2 else FIELDS  # attn.c_proj: square
    model = Swift.prepare(make(), {"tuner": "lora", "init_lora_weights": init, **fields})
    torch.testing.assert_close(logits(model), logits(original), atol=1e-5, rtol=0)
    with model.disable_adapters():
        assert (logits(model) - logits(original)).abs().max() > 1e-2  # the residual base differs
    layer = next(m for n, m in model.named_modules() if n.endswith(("q_proj", "c_attn")))
    name = "default"
    a, b, s = layer.lora_A[name].weight, layer.lora_B[name].weight, layer.scaling[name]
    r = a.shape[0]
    w = layer.dense_weight() + layer.lora_delta(name)  # the original weight, (out, in)
    eye = torch.eye(r)
    if init == "olora":
        torch.testing.assert_close(b.T @ b, eye, atol=1e-5, rtol=0)  # Q's orthonormal columns
        torch.testing.assert_close(a.triu(), a)  # R's rows: upper triangular
    else:
        sv = torch.linalg.svdvals(w)[:r]
        torch.testing.assert_close(b.T @ b, torch.diag(sv / s), atol=1e-4, rtol=1e-4)  # B = U sqrt(S/s)
        torch.testing.assert_close(a @ a.T, torch.diag(sv / s), atol=1e-4, rtol=1e-4)  # A = sqrt(S/s) V^T
        # What is left in the base has no component along the top-r singular directions.
        torch.testing.assert_close(torch.linalg.svdvals(layer.dense_weight())[: r], torch.linalg.svdvals(w)[r : 2 * r],
                                   atol=1e-4, rtol=1e-4)  # fmt: skip


def test_pissa_adapter_loads_in_peft_and_back(tmp_path: Path) -> None:
    """Saved adapters keep init_lora_weights='pissa': either library repeats the SVD on the original
    base (deterministic) and reads the trained A, B; both give the same logits."""
    model = Swift.prepare(llama(), {"tuner": "lora", "init_lora_weights": "pissa", **FIELDS})
    with torch.no_grad():  # stand-in for training: move A and B off their start
        for _, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    adapted = logits(model)
    model.save_pretrained(tmp_path / "ours")
    theirs = peft.PeftModel.from_pretrained(llama(), tmp_path / "ours")
    assert theirs.peft_config["default"].init_lora_weights == "pissa"
    torch.testing.assert_close(logits(theirs), adapted, atol=1e-5, rtol=0)
    again = Swift.from_pretrained(llama(), tmp_path / "ours")
    torch.testing.assert_close(logits(again), adapted, atol=1e-6, rtol=0)

    peft_model = peft.get_peft_model(llama(), peft.LoraConfig(init_lora_weights="olora", **FIELDS))
    peft_model.save_pretrained(tmp_path / "peft")
    ours = Swift.from_pretrained(llama(), tmp_path / "peft")
    torch.testing.assert_close(logits(ours), logits(peft_model), atol=1e-5, rtol=0)


def test_pissa_merges_into_the_original_weights() -> None:
    original = llama()
    model = Swift.prepare(llama(), {"tuner": "lora", "init_lora_weights": "pissa", **FIELDS})
    merged = model.merge_and_unload()
    for (n, p), (_, q) in zip(merged.named_parameters(), original.named_parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=0, msg=n)


def test_init_false_starts_away_from_the_base() -> None:
    model = Swift.prepare(llama(), {"tuner": "lora", "init_lora_weights": False, **FIELDS})
    assert (logits(model) - logits(llama())).abs().max() > 1e-2


def test_init_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="lora: init_lora_weights"):
        parse_config({"tuner": "lora", "init_lora_weights": "pissa_niter_x"})
    assert parse_config({"tuner": "lora", "init_lora_weights": "pissa_niter_16"}).init_lora_weights == "pissa_niter_16"
    with pytest.raises(ConfigError, match="r=40 exceeds"):
        Swift.prepare(llama(), {"tuner": "lora", "init_lora_weights": "olora", "r": 40, "target_modules": ["q_proj"]})
    with pytest.raises(ConfigError, match="init_lora_weights='pissa' is implemented for Linear layers, not Conv2d"):
        from tiny_lms import convnet

        Swift.prepare(convnet(), {"tuner": "lora", "init_lora_weights": "pissa", "target_modules": ["conv"]})
    pytest.importorskip("bitsandbytes")
    with pytest.raises(ConfigError, match="needs a float one"):
        Swift.prepare(llama(hidden=64, kv_heads=4), {"tuner": "qlora", "init_lora_weights": "pissa", "target_modules": ["q_proj"]})


# The conformance suite with the base rewritten at init (disabling gives the residual: the checks
# read trains_base_parameters and compare against the adapted model instead of the base). Identity at
# init holds up to the rounding of W - s B A + s B A (a few 1e-6 here, above the suite's 1e-6):
# test_weight_based_inits_keep_the_output_and_move_the_principal_part checks it at 1e-5.
CHECKS = ["only_adapter_trains", "disable", "save_load", "merge", "memorise", "generate", "half_precision_base"]
test_pissa_conformance = conformance_tests("lora", models=["llama", "gpt2"], config={"init_lora_weights": "pissa"}, checks=CHECKS)
test_olora_conformance = conformance_tests("lora", models=["qwen2"], config={"init_lora_weights": "olora", "r": 4}, checks=CHECKS)


def test_failed_pissa_add_leaves_the_base_weights_untouched() -> None:
    """PiSSA rewrites base weights; when a later layer fails (r too large for it), the rollback restores
    every weight already rewritten."""
    import torch
    from torch import nn

    from swiftune import Swift

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(Exception, match="r=8"):
        Swift.prepare(model, {"tuner": "lora", "r": 8, "target_modules": ["0", "2"], "init_lora_weights": "pissa"})
    after = model.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
