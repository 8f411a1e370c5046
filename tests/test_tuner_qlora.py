"""QLoRA: LoRA over a bitsandbytes base, on CPU (bitsandbytes 0.50 runs 4-bit and 8-bit there).

Covers what the conformance suite (default config: NF4 + double quantization) does not: FP4,
8-bit and bf16 compute, models loaded quantized by transformers, k-bit training preparation,
merging into a float model, PEFT loading a QLoRA adapter on a 4-bit base, and the memory the
quantized linear layers take.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

bnb = pytest.importorskip("bitsandbytes")
transformers = pytest.importorskip("transformers")

from swiftune import Swift  # noqa: E402
from swiftune.errors import ConfigError  # noqa: E402
from swiftune.testing import conformance_tests  # noqa: E402
from swiftune.tuners.qlora import QLoraLinear, storage_bytes  # noqa: E402

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model, run_cli  # noqa: E402

# Non-default configurations through the whole conformance suite (the defaults run in test_conformance).
# (8-bit training is slow on CPU: its loss falling is shown by test_prepare_quantizes_a_float_model.)
test_conformance_8bit = pytest.mark.slow(conformance_tests(
    "qlora", models=["llama"], config={"bits": 8},
    checks=["identity", "only_adapter_trains", "disable", "save_load", "merge", "generate", "two_adapters"],
))
test_conformance_fp4 = pytest.mark.slow(conformance_tests(
    "qlora", models=["gpt2"], config={"bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False},
    checks=["identity", "save_load", "merge", "two_adapters"],
))

IDS = torch.tensor([[5, 9, 17, 33, 2, 60, 41], [7, 7, 12, 50, 3, 28, 11]])


def tiny_llama(dtype: torch.dtype = torch.float32) -> nn.Module:
    """Hidden size 64: every linear layer holds whole 64-value quantization blocks."""
    cfg = transformers.LlamaConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, tie_word_embeddings=False,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(cfg)
    return model.to(dtype).eval()


@pytest.fixture(scope="module")
def saved_base(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qlora-base")
    tiny_llama().save_pretrained(folder)
    return folder


def load_quantized(folder: Path, **quant) -> nn.Module:
    """The base loaded quantized by transformers (``BitsAndBytesConfig``), on CPU."""
    config = transformers.BitsAndBytesConfig(**quant)
    return transformers.AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, device_map="cpu").eval()


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits.float()


def train(model: nn.Module, steps: int = 6, lr: float = 2e-2) -> list[float]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(input_ids=IDS, labels=IDS).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def block_linears(model: nn.Module) -> dict[str, nn.Module]:
    """The base layers under every linear layer of the decoder blocks (what 'all-linear' quantizes)."""
    out = {}
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for name, module in base.named_modules():
        if ".layers." in name and isinstance(module, nn.Linear) and "lora_" not in name:
            out[name.replace(".base_layer", "")] = module
    return out


# -- quantizing a float model ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, layer_type, quant_type, nested, compute",
    [
        ({}, "Linear4bit", "nf4", True, torch.float32),
        ({"bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False}, "Linear4bit", "fp4", False, torch.float32),
        ({"bnb_4bit_compute_dtype": "bfloat16"}, "Linear4bit", "nf4", True, torch.bfloat16),
        ({"bits": 8}, "Linear8bitLt", None, None, None),
    ],
    ids=["nf4-double", "fp4", "nf4-bf16-compute", "int8"],
)
def test_prepare_quantizes_a_float_model(config, layer_type, quant_type, nested, compute):
    float_logits = logits(tiny_llama())
    model = Swift.prepare(tiny_llama(), {"tuner": "qlora", **config})
    layers = block_linears(model)
    assert len(layers) == 14 and all(type(m).__name__ == layer_type for m in layers.values()), layers
    assert isinstance(model.model.lm_head, nn.Linear) and model.model.lm_head.weight.dtype == torch.float32
    q = layers["model.layers.0.self_attn.q_proj"]
    if quant_type:
        assert q.weight.quant_state.quant_type == quant_type
        assert q.weight.quant_state.nested == nested
        assert q.compute_dtype == compute
    wrappers = [m for m in model.modules() if isinstance(m, QLoraLinear)]
    assert len(wrappers) == 14
    # The weights really are quantized: the logits move (relative error ~0.35 for 4 bits on this tiny
    # random model, ~0.025 for 8 bits), but stay close to the float model's.
    error = ((logits(model) - float_logits).norm() / float_logits.norm()).item()
    assert 0 < error < (0.1 if config.get("bits") == 8 else 0.6), error
    losses = train(model)
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)


def test_missing_bitsandbytes_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # "import bitsandbytes" now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'swiftune\[qlora\]'"):
        Swift.prepare(tiny_llama(), {"tuner": "qlora"})


def test_config_errors_name_tuner_and_field():
    with pytest.raises(ConfigError, match="qlora: bits"):
        Swift.prepare(tiny_llama(), {"tuner": "qlora", "bits": 3})
    with pytest.raises(ConfigError, match="qlora: bnb_4bit_quant_type"):
        Swift.prepare(tiny_llama(), {"tuner": "qlora", "bnb_4bit_quant_type": "int4"})


# -- a model loaded quantized by transformers ------------------------------------------------------------
@pytest.mark.slow
def test_model_loaded_with_bitsandbytes_config(saved_base):
    """transformers' BitsAndBytesConfig works on CPU (device_map='cpu'); QLoRA keeps its layers as they are."""
    quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
             "bnb_4bit_compute_dtype": torch.float32}  # fmt: skip
    loaded = load_quantized(saved_base, **quant)
    before = block_linears(loaded)
    assert all(isinstance(m, bnb.nn.Linear4bit) for m in before.values())
    model = Swift.prepare(loaded, {"tuner": "qlora"})
    after = block_linears(model)
    assert all(after[n] is m for n, m in before.items()), "already-quantized layers must be kept, not re-quantized"
    # The same quantization as swiftune's own of the float model: identical logits.
    own = Swift.prepare(tiny_llama(), {"tuner": "qlora"})
    assert torch.equal(logits(model), logits(own))
    losses = train(model)
    assert losses[-1] < 0.8 * losses[0], losses

    with pytest.raises(ConfigError, match="already quantized to 4 bits"):
        Swift.prepare(load_quantized(saved_base, **quant), {"tuner": "qlora", "bits": 8})
    with pytest.raises(ConfigError, match="already quantized as 'nf4'"):
        Swift.prepare(load_quantized(saved_base, **quant), {"tuner": "qlora", "bnb_4bit_quant_type": "fp4"})

    int8 = Swift.prepare(load_quantized(saved_base, load_in_8bit=True), {"tuner": "qlora", "bits": 8})
    assert all(isinstance(m, bnb.nn.Linear8bitLt) for m in block_linears(int8).values())
    losses = train(int8)
    assert losses[-1] < 0.8 * losses[0], losses


# -- k-bit training preparation ----------------------------------------------------------------------------
def test_kbit_training_preparation_and_gradient_checkpointing():
    config = {"tuner": "qlora", "bnb_4bit_compute_dtype": "bfloat16"}
    torch.manual_seed(0)
    plain = Swift.prepare(tiny_llama(torch.bfloat16), config)
    torch.manual_seed(0)  # the same LoRA init in both
    ckpt = Swift.prepare(tiny_llama(torch.bfloat16), {**config, "gradient_checkpointing": True})
    for model in (plain, ckpt):
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable), sorted(trainable)[:5]
        floats = {n: p.dtype for n, p in model.named_parameters() if p.is_floating_point() and "lora_" not in n}
        assert floats and set(floats.values()) == {torch.float32}, floats  # norms, embeddings, head upcast
        assert isinstance(model.model.model.layers[0].mlp.up_proj.base_layer, bnb.nn.Linear4bit)
    assert ckpt.model.is_gradient_checkpointing and not plain.model.is_gradient_checkpointing
    # Input gradients: the frozen embeddings' output requires grad, so checkpointed blocks backpropagate.
    ckpt.train()
    assert ckpt.model.get_input_embeddings()(IDS).requires_grad
    grads = []
    for model in (plain, ckpt):
        model.train()
        model.zero_grad()
        model(input_ids=IDS, labels=IDS).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        assert g.abs().sum() > 0 or "lora_A" in name, name  # B starts at zero, so A's first gradient is zero
        torch.testing.assert_close(grads[1][name], g, atol=1e-4, rtol=1e-3, msg=name)


# -- merging -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, atol", [({}, 1e-4), ({"bits": 8}, 1e-4), ({"bnb_4bit_compute_dtype": "bfloat16"}, 0.15)],
    ids=["nf4", "int8", "nf4-bf16-compute"],
)
def test_merge_dequantizes_into_a_float_model(config, atol, tmp_path):
    """Merged logits equal the adapted ones up to the compute dtype's rounding (bf16: ~1e-1 on logits ~5)."""
    model = Swift.prepare(tiny_llama(), {"tuner": "qlora", **config})
    train(model, steps=4)
    adapted = logits(model)
    merged = model.merge_and_unload()
    assert not [n for n, m in merged.named_modules() if isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))]
    layers = block_linears(merged)
    assert len(layers) == 14 and all(type(m) is nn.Linear and m.weight.dtype == torch.float32 for m in layers.values())
    merged_logits = logits(merged)
    diff = (merged_logits - adapted).abs().max().item()
    assert diff <= atol, f"merged vs adapted logits differ by {diff:.3g} (allowed {atol})"
    # A plain float checkpoint: transformers loads it without swiftune or bitsandbytes.
    merged.save_pretrained(tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(logits(reloaded), merged_logits)


# -- PEFT compatibility --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_peft_loads_qlora_adapter_on_4bit_base(saved_base, tmp_path):
    peft = pytest.importorskip("peft")
    model = Swift.prepare(tiny_llama(), {"tuner": "qlora"})
    train(model, steps=4)
    adapted = logits(model)
    model.save_pretrained(tmp_path)

    base = load_quantized(
        saved_base, load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )  # fmt: skip
    # bitsandbytes repacks 4-bit weights with bf16 scales on the first CPU inference where AVX512-BF16
    # exists (a ~2e-3 change in the logits); swiftune's layers opt out, so PEFT's base does too here.
    for m in base.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False
    peft_model = peft.PeftModel.from_pretrained(base, tmp_path).eval()
    q = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert type(q).__module__ == "peft.tuners.lora.bnb" and type(q).__name__ == "Linear4bit"
    torch.testing.assert_close(logits(peft_model), adapted, atol=1e-5, rtol=0)

    # And back: the folder loads onto a float base, which swiftune quantizes as the config says.
    again = Swift.from_pretrained(tiny_llama(), tmp_path)
    assert again.tuners["default"].name == "qlora"
    assert torch.equal(logits(again), adapted)


# -- memory ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits, limit", [(4, 0.35), (8, 0.35)])
def test_quantized_linear_weights_memory(bits, limit, record_property, capsys):
    """Bytes of the quantized linear layers (packed weight + scales, nested scales, code) vs fp32."""
    model = Swift.prepare(tiny_llama(), {"tuner": "qlora", "bits": bits})
    layers = block_linears(model)
    quantized = sum(storage_bytes(m) for m in layers.values())
    fp32 = sum(m.in_features * m.out_features * 4 for m in layers.values())
    ratio = quantized / fp32
    record_property(f"qlora_{bits}bit_linear_bytes_ratio", round(ratio, 4))
    with capsys.disabled():
        print(f"\nqlora {bits}-bit: linear weights {quantized:,} B vs fp32 {fp32:,} B = {ratio:.3f}x")
    assert ratio <= limit, f"{bits}-bit linear weights take {ratio:.3f}x of fp32"


# -- the CLI -----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sft_cli_with_qlora(tmp_path_factory, tmp_path):
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    model, data = ensure_model(root), ensure_data(root)
    out = tmp_path / "run"
    proc = run_cli("sft", "--model", str(model), "--dataset", str(data), "--output-dir", str(out), "--tuner", "qlora",
                   "--max-steps", "2", "--save-steps", "2", "--val-ratio", "0", *TRAIN_FLAGS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = out / "final"
    import json

    config = json.loads((final / "adapter_config.json").read_text())
    assert config["tuner"] == "qlora" and config["peft_type"] == "LORA"
    loaded = Swift.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(model), final)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.modules())
