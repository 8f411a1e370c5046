"""Adapter weights in fp32 on half-precision bases (``adapter_dtype``), with PEFT as the oracle on disk.

Per-tuner dtypes on a bf16 base are the conformance suite's ``half_precision_base`` check; here:
the choice itself, updates that bf16 weights would round away, the fused LoRA op with fp32
adapters on a bf16 base, save / load (swiftune and PEFT), and ``swiftune sft``'s field.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from swiftune import ConfigError, Swift
from swiftune.adapter_dtype import resolve_adapter_dtype
from swiftune.testing import model_case

BF16 = torch.bfloat16
LORA = {"tuner": "lora", "r": 4, "lora_alpha": 8}


def bf16_llama() -> torch.nn.Module:
    return model_case("llama").build().to(BF16)


def lora_params(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


def test_auto_is_fp32_on_half_bases_and_the_base_dtype_otherwise() -> None:
    assert resolve_adapter_dtype("auto", torch.bfloat16) == torch.float32
    assert resolve_adapter_dtype("auto", torch.float16) == torch.float32
    assert resolve_adapter_dtype("auto", torch.float64) == torch.float64
    assert resolve_adapter_dtype("auto", None) == torch.float32
    assert resolve_adapter_dtype("bfloat16", torch.float32) == torch.bfloat16


@pytest.mark.parametrize("choice, expected", [("auto", torch.float32), ("float32", torch.float32),
                                              ("bfloat16", torch.bfloat16), ("float16", torch.float16)])
def test_choice_sets_the_lora_dtype_and_outputs_stay_bf16(choice, expected) -> None:
    case = model_case("llama")
    model = Swift.prepare(bf16_llama(), LORA, adapter_dtype=choice)
    assert {p.dtype for p in lora_params(model).values()} == {expected}
    assert {p.dtype for n, p in model.named_parameters() if "lora_" not in n} == {BF16}
    logits = case.logits(model, case.batch(0).inputs)
    assert logits.dtype == BF16 and torch.isfinite(logits.float()).all()


def test_explicit_half_adapters_on_an_fp32_base_and_bad_values() -> None:
    case = model_case("llama")
    model = Swift.prepare(case.build(), LORA, adapter_dtype="bfloat16")
    assert {p.dtype for p in lora_params(model).values()} == {BF16}
    assert case.logits(model, case.batch(0).inputs).dtype == torch.float32
    with pytest.raises(ConfigError, match="adapter_dtype"):
        Swift.prepare(case.build(), LORA, adapter_dtype="fp8")


def test_base_parameters_and_modules_to_save_keep_the_base_dtype() -> None:
    full = Swift.prepare(bf16_llama(), {"tuner": "full"})
    assert {p.dtype for p in full.parameters() if p.requires_grad} == {BF16}
    bitfit = Swift.prepare(model_case("bert").build().to(BF16), {"tuner": "bitfit"})
    assert {p.dtype for p in bitfit.parameters() if p.requires_grad} == {torch.float32}  # the deltas
    saved = Swift.prepare(model_case("bert").build().to(BF16), {**LORA, "modules_to_save": ["cls"]})
    copies = {n: p for n, p in saved.named_parameters() if ".modules_to_save." in n}
    assert copies and {p.dtype for p in copies.values()} == {BF16}  # as PEFT keeps them
    assert {p.dtype for p in lora_params(saved).values()} == {torch.float32}


def train(model: torch.nn.Module, steps: int, lr: float) -> None:
    case = model_case("llama")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    for i in range(steps):
        case.loss(model, case.batch(i)).backward()
        opt.step()
        opt.zero_grad()


def test_small_updates_survive_in_fp32_and_round_away_in_bf16() -> None:
    """lr 1e-5: Adam moves each weight by about 1e-5, far below half a bf16 step of LoRA A's
    entries (~5e-4 at |w| ~ 0.2), so almost no bf16 entry moves while every fp32 one does."""
    moved = {}
    for choice in ("auto", "bfloat16"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = Swift.prepare(bf16_llama(), LORA, adapter_dtype=choice)
        a_before = {n: p.detach().clone() for n, p in lora_params(model).items() if ".lora_A." in n}
        train(model, 3, 1e-5)
        after = {n: p for n, p in lora_params(model).items() if n in a_before}
        changed = sum(int((p != a_before[n]).sum()) for n, p in after.items())
        moved[choice] = changed / sum(p.numel() for p in after.values())
    assert moved["bfloat16"] < 0.05  # only entries within ~2e-3 of zero can take a 1e-5 step in bf16
    assert moved["auto"] > 0.95


def test_fused_op_with_fp32_adapters_matches_autocast_numerics() -> None:
    """bf16 base, fp32 A / B: the fused layer computes as autocast would (adapters cast to bf16),
    returns bf16, and gives fp32 gradients equal to the unfused graph's."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 32, generator=g).to(BF16).requires_grad_()
    w = torch.randn(48, 32, generator=g).to(BF16)
    a = torch.randn(4, 32, generator=g).requires_grad_()
    b = torch.randn(48, 4, generator=g).requires_grad_()
    model = Swift.prepare(torch.nn.Sequential(torch.nn.Linear(32, 48, bias=False)).to(BF16),
                          {"tuner": "lora", "r": 4, "lora_alpha": 8, "target_modules": ["0"]})
    layer = model.model[0]
    with torch.no_grad():
        layer.base_layer.weight.copy_(w)
        layer.lora_A["default"].weight.copy_(a)
        layer.lora_B["default"].weight.copy_(b)
    out = layer(x)
    assert out.dtype == BF16 and out.grad_fn is not None and "Fused" in type(out.grad_fn).__name__
    out.float().square().sum().backward()
    got = {"x": x.grad.clone(), "a": layer.lora_A["default"].weight.grad, "b": layer.lora_B["default"].weight.grad}
    assert got["a"].dtype == got["b"].dtype == torch.float32
    x.grad = None
    ref = F.linear(x, w) + F.linear(F.linear(x, a.to(BF16)), b.to(BF16)) * 2.0
    torch.testing.assert_close(out, ref, rtol=0, atol=0.02 * ref.abs().max().item())
    ref.float().square().sum().backward()
    for name, want in (("x", x.grad), ("a", a.grad), ("b", b.grad)):
        torch.testing.assert_close(got[name].float(), want.float(), rtol=0.02, atol=0.02 * want.abs().max().item())


def test_save_load_keeps_fp32_and_peft_loads_it_with_equal_logits(tmp_path) -> None:
    peft = pytest.importorskip("peft")
    case = model_case("llama")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Swift.prepare(bf16_llama(), LORA)
    train(model, 3, 1e-2)
    model.eval()
    want = case.logits(model, case.batch(0).inputs)
    model.save_pretrained(tmp_path)
    assert {t.dtype for t in load_file(tmp_path / "adapter_model.safetensors").values()} == {torch.float32}

    ours = Swift.from_pretrained(bf16_llama(), tmp_path)
    assert {p.dtype for p in lora_params(ours).values()} == {torch.float32}
    torch.testing.assert_close(case.logits(ours, case.batch(0).inputs), want, rtol=0, atol=0)
    as_bf16 = Swift.from_pretrained(bf16_llama(), tmp_path, adapter_dtype="bfloat16")
    assert {p.dtype for p in lora_params(as_bf16).values()} == {BF16}

    theirs = peft.PeftModel.from_pretrained(bf16_llama(), tmp_path).eval()
    assert {p.dtype for n, p in theirs.named_parameters() if "lora_" in n} == {torch.float32}
    got = case.logits(theirs, case.batch(0).inputs)
    # PEFT computes the LoRA branch in fp32 outside autocast, swiftune in the base's bf16: bf16 rounding apart.
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=0.03 * want.abs().max().item())


def test_sft_field_is_validated_and_reaches_the_adapter(tmp_path) -> None:
    import swiftune
    from cli_fixtures import ensure_data, ensure_model
    from swiftune.recipes.arguments import SftArguments

    assert SftArguments().adapter_dtype == "auto"
    with pytest.raises(Exception, match="adapter_dtype"):
        SftArguments(adapter_dtype="fp8")
    model, data = ensure_model(tmp_path / "assets"), ensure_data(tmp_path / "assets")
    result = swiftune.sft(model=str(model), dataset=[f"{data}#8"], output_dir=str(tmp_path / "run"), max_steps=1,
                          save_steps=10, val_ratio=0, max_length=32, precision="fp32", adapter_dtype="bfloat16",
                          per_device_train_batch_size=2, gradient_accumulation_steps=1, tuner_args={"r": 2})
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert weights and {t.dtype for t in weights.values()} == {BF16}
