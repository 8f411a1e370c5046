"""The 'adapter' tuner: default targets per family, the bottleneck formula, tuples, config errors,
plain modules, and LoRA + adapter + side on one model (switching, disabling, save / load exact)."""

import tempfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from swiftune import ConfigError, Swift, parse_config
from swiftune.testing import conformance_tests, model_case
from swiftune.testing.conformance import NotApplicable, logits_of, run_check, train_steps
from swiftune.tuners.adapter import AdapterConfig
from swiftune.tuners.adapter.layer import AdapterLayer

# Plain modules have no attention / MLP names: the default config skips them, explicit targets run.
test_adapter_on_plain_mlp = conformance_tests("adapter", models=["mlp"], config={"target_modules": ["fc1", "fc2"]})


def _adapter_layers(model) -> dict[str, AdapterLayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, AdapterLayer)}


@pytest.mark.parametrize(
    "family, expected",
    [
        ("llama", {"model.layers.{i}.self_attn.o_proj", "model.layers.{i}.mlp.down_proj"}),
        ("qwen2", {"model.layers.{i}.self_attn.o_proj", "model.layers.{i}.mlp.down_proj"}),
        ("gpt2", {"transformer.h.{i}.attn.c_proj", "transformer.h.{i}.mlp.c_proj"}),
        ("bert", {"bert.encoder.layer.{i}.attention.output.dense", "bert.encoder.layer.{i}.output.dense"}),
    ],
)
def test_default_targets_are_attention_and_mlp_outputs(family, expected):
    model = Swift.prepare(model_case(family).build(), {"tuner": "adapter"})
    names = set(_adapter_layers(model.model))
    assert names == {e.format(i=i) for e in expected for i in range(2)}
    for layer in _adapter_layers(model.model).values():
        assert layer.features == 32 and layer.adapter_down["default"].out_features == 16  # max(16, 32 / 16)


def test_bottleneck_width_options():
    def width(**fields):
        model = Swift.prepare(model_case("llama").build(), {"tuner": "adapter", **fields})
        return {m.adapter_down["default"].out_features for m in _adapter_layers(model.model).values()}

    assert width(adapter_dim=3) == {3}
    assert width(reduction_factor=4) == {8}
    assert AdapterConfig().bottleneck(4096) == 256


def test_forward_is_houlsby_bottleneck_on_the_output():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    net = nn.Sequential(base)
    model = Swift.prepare(net, {"tuner": "adapter", "target_modules": ["0"], "adapter_dim": 3, "act": "tanh"})
    layer = model.model[0]
    assert isinstance(layer, AdapterLayer)
    down, up = layer.adapter_down["default"], layer.adapter_up["default"]
    with torch.no_grad():
        up.weight.normal_()
        up.bias.normal_()
    x = torch.randn(4, 6)
    y = base(x)
    expected = y + up(torch.tanh(down(y)))
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert (model(x) - y).abs().max() > 1e-2


def test_module_returning_a_tuple_gets_the_adapter_on_its_first_element():
    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "adapter", "target_modules": r".*\.self_attn"})
    attn = model.model.model.layers[0].self_attn
    assert isinstance(attn, AdapterLayer) and attn.features == 32
    base_logits = logits_of(case.build(), case)
    assert torch.equal(logits_of(model, case), base_logits)
    losses = train_steps(model, case, 10)
    assert losses[-1] < losses[0] - 0.1
    seen = {}
    attn.register_forward_hook(lambda m, a, out: seen.setdefault("out", out))
    logits_of(model, case)
    assert isinstance(seen["out"], tuple) and seen["out"][0].shape[-1] == 32
    assert not torch.equal(logits_of(model, case), base_logits)


def test_config_errors_name_the_tuner_and_field():
    with pytest.raises(ConfigError, match="adapter: .*adapter_dim or reduction_factor"):
        Swift.prepare(model_case("llama").build(), {"tuner": "adapter", "adapter_dim": 8, "reduction_factor": 4})
    with pytest.raises(ConfigError, match="adapter: act"):
        Swift.prepare(model_case("llama").build(), {"tuner": "adapter", "act": "swish"})
    with pytest.raises(ConfigError, match="adapter: dropout"):
        parse_config({"tuner": "adapter", "dropout": 1.5})
    with pytest.raises(ConfigError, match="matched no module"):
        Swift.prepare(model_case("llama").build(), {"tuner": "adapter", "target_modules": ["nope"]})


def test_default_config_is_skipped_on_plain_modules_with_the_reason():
    with pytest.raises(NotApplicable, match="explicit targets"):
        run_check("identity", {"tuner": "adapter"}, model_case("mlp"))
    with pytest.raises(ConfigError, match="matched no module"):
        Swift.prepare(model_case("mlp").build(), {"tuner": "adapter"})


def test_dropout_only_in_training():
    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "adapter", "dropout": 0.5})
    train_steps(model, case, 3)
    batch = case.batch(0).inputs
    with torch.no_grad():
        a, b = model(**batch).logits, model(**batch).logits
        model.train()
        c, d = model(**batch).logits, model(**batch).logits
    assert torch.equal(a, b) and not torch.equal(c, d)


# -- LoRA + adapter + side on one model ----------------------------------------------------------------------
COMBO = {"default": {"tuner": "lora"}, "adapter1": {"tuner": "adapter"}, "side1": {"tuner": "side"}}


def _trained_combo(case):
    torch.manual_seed(0)
    model = Swift.prepare(case.build(), COMBO)
    for seed, name in enumerate(COMBO):  # train each adapter on its own, so each has its own visible effect
        model.set_active_adapters([name])
        train_steps(model, case, 5, seed=seed)
    model.set_active_adapters(list(COMBO))
    return model


def test_lora_adapter_side_switch_disable_and_reload_exactly():
    case = model_case("llama")
    base = logits_of(case.build(), case)
    model = _trained_combo(case)
    layer = model.model.model.layers[0].base_layer.self_attn.o_proj  # side wraps the block
    assert isinstance(layer, AdapterLayer) and type(layer.base_layer).__name__ == "LoraLinear"
    every = logits_of(model, case)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        subsets = [["default"], ["adapter1"], ["side1"], ["default", "side1"], ["adapter1", "side1"]]
        for subset in subsets:
            model.set_active_adapters(subset)
            got = logits_of(model, case)
            assert not torch.equal(got, base) and not torch.equal(got, every), subset
            # The same adapters loaded alone on a fresh base give the same logits exactly.
            alone = Swift.from_pretrained(case.build(), tmp, adapter_names=list(COMBO))
            alone.set_active_adapters(subset)
            for other in [n for n in COMBO if n not in subset]:
                alone.delete_adapter(other)
            assert torch.equal(logits_of(alone, case), got), subset
        model.set_active_adapters(list(COMBO))
        assert torch.equal(logits_of(model, case), every)
        with model.disable_adapters():
            assert torch.equal(logits_of(model, case), base)
        # Saved and loaded back (same order of adapters): identical, with names independent of the stack.
        loaded = Swift.from_pretrained(case.build(), tmp, adapter_names=list(COMBO))
        assert loaded.active_adapters == list(COMBO)
        assert torch.equal(logits_of(loaded, case), every)
        assert all(".base_layer." not in k for n in COMBO for k in model.adapter_state_dict(n))
    # Deleting adapters one by one leaves the rest exact, and finally the plain model.
    model.delete_adapter("adapter1")
    model.set_active_adapters(["side1"])
    side_only = logits_of(model, case)
    model.delete_adapter("default")
    assert torch.equal(logits_of(model, case), side_only)
    plain = model.unload()
    assert not any(isinstance(m, (AdapterLayer,)) for m in plain.modules())
    assert set(plain.state_dict()) == set(case.build().state_dict())
    assert torch.equal(logits_of(plain, case), base)


def test_adapter_sees_the_lora_updated_output():
    """Adapter added after LoRA on one layer: y = W x + B A x, then y + up(act(down(y)))."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 6))
    model = Swift.prepare(net, {"lora": {"tuner": "lora", "target_modules": ["0"], "init_lora_weights": False},
                                "ad": {"tuner": "adapter", "target_modules": ["0"], "adapter_dim": 2}})  # fmt: skip
    outer = model.model[0]
    with torch.no_grad():
        outer.adapter_up["ad"].weight.normal_()
    x = torch.randn(3, 6)
    model.set_active_adapters(["lora"])
    y = model(x)
    model.set_active_adapters(["lora", "ad"])
    down, up = outer.adapter_down["ad"], outer.adapter_up["ad"]
    assert torch.allclose(model(x), y + up(F.gelu(down(y))), atol=1e-6)


# -- the default configs on more decoder families (all three additive tuners of this issue) -----------------
def _family_case(family: str):
    import transformers as T

    from swiftune.testing.models import _TOKENS, ModelCase

    classes = {"mistral": (T.MistralConfig, T.MistralForCausalLM, {}), "phi3": (T.Phi3Config, T.Phi3ForCausalLM, {}),
               "gemma": (T.GemmaConfig, T.GemmaForCausalLM, {"head_dim": 8})}  # fmt: skip
    config_cls, model_cls, extra = classes[family]
    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, **_TOKENS, **extra)  # fmt: skip
    return ModelCase(family, lambda: model_cls(config_cls(**sizes)), "causal_lm", is_transformers=True)


@pytest.mark.parametrize("family", ["mistral", "phi3", "gemma"])
@pytest.mark.parametrize("tuner", ["adapter", "side", "restuning"])
def test_default_config_on_more_decoder_families(family, tuner):
    case = _family_case(family)
    base = logits_of(case.build(), case)
    model = Swift.prepare(case.build(), {"tuner": tuner})
    assert torch.equal(logits_of(model, case), base)
    losses = train_steps(model, case, 5)
    assert losses[-1] < losses[0] - 0.1
    with torch.no_grad():
        out = model.generate(**case.batch(0).inputs, max_new_tokens=2, do_sample=False)
    assert out.shape == (case.batch_size, case.seq_len + 2)
