"""The 'side' tuner: block targets, the gated blend formula, exact identity at init for any gate,
the transformer side network under a KV cache and padding, config errors, plain modules."""

import pytest
import torch
from torch import nn

from swiftune import ConfigError, Swift
from swiftune.testing import conformance_tests, model_case
from swiftune.testing.conformance import logits_of, train_steps
from swiftune.tuners.side.layer import SideLayer
from swiftune.tuners.side.network import SideTransformer

TRANSFORMER = {"tuner": "side", "side_type": "transformer", "side_width": 16, "num_heads": 2}

test_side_on_plain_mlp = conformance_tests("side", models=["mlp"], config={"target_modules": ["fc2"]})
test_side_transformer = conformance_tests(
    "side", models=["llama"], checks=["identity", "save_load", "generate", "two_adapters"], config=TRANSFORMER
)


def _side_layers(model) -> dict[str, SideLayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SideLayer)}


@pytest.mark.parametrize(
    "family, pattern", [("llama", "model.layers.{i}"), ("qwen2", "model.layers.{i}"),
                        ("gpt2", "transformer.h.{i}"), ("bert", "bert.encoder.layer.{i}")],
)  # fmt: skip
def test_default_targets_every_block(family, pattern):
    model = Swift.prepare(model_case(family).build(), {"tuner": "side"})
    assert set(_side_layers(model.model)) == {pattern.format(i=i) for i in range(2)}


def test_regex_and_exclusion_select_blocks():
    model = Swift.prepare(model_case("llama").build(), {"tuner": "side", "target_modules": r"model\.layers\.\d+",
                                                        "exclude_modules": ["model.layers.0"]})  # fmt: skip
    assert set(_side_layers(model.model)) == {"model.layers.1"}


class _TupleBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(x), "extra"


def test_blend_formula_on_a_tuple_returning_block():
    torch.manual_seed(0)
    net = nn.Sequential(_TupleBlock())
    model = Swift.prepare(net, {"tuner": "side", "target_modules": ["0"], "side_width": 5, "alpha_init": 0.7, "hidden_size": 8})
    layer = model.model[0]
    side = layer.side["default"]
    with torch.no_grad():
        side.out.weight.normal_()
    x = torch.randn(3, 4, 8)
    main = net[0].base_layer.lin(x)
    g = torch.sigmoid(torch.tensor(0.7))
    expected_side = main + side(x)  # the side branch: the main output corrected by the side network
    out, extra = model(x)
    assert extra == "extra"
    assert torch.allclose(out, g * main + (1 - g) * expected_side, atol=1e-6)
    assert (out - main).abs().max() > 1e-2


@pytest.mark.parametrize("alpha", [-3.0, 0.0, 5.0])
def test_identity_at_init_is_exact_for_any_gate(alpha):
    case = model_case("gpt2")
    base = logits_of(case.build(), case)
    model = Swift.prepare(case.build(), {"tuner": "side", "alpha_init": alpha})
    assert torch.equal(logits_of(model, case), base)


def test_gate_and_side_network_train():
    case = model_case("llama")
    model = Swift.prepare(case.build(), {"tuner": "side"})
    layer = next(iter(_side_layers(model.model).values()))
    alpha = layer.side_alpha["default"]
    before = alpha.detach().clone()
    losses = train_steps(model, case, 5)
    assert losses[-1] < losses[0]
    assert not torch.equal(alpha.detach(), before)  # the gate learns once the side network is non-zero


def test_config_errors():
    with pytest.raises(ConfigError, match="side: .*divisible by num_heads"):
        Swift.prepare(model_case("llama").build(), {**TRANSFORMER, "side_width": 10, "num_heads": 4})
    with pytest.raises(ConfigError, match="side: side_type"):
        Swift.prepare(model_case("llama").build(), {"tuner": "side", "side_type": "lstm"})
    with pytest.raises(ConfigError, match="'fc1' maps 16 to 32 features"):
        Swift.prepare(model_case("mlp").build(), {"tuner": "side", "target_modules": ["fc1"]})
    with pytest.raises(ConfigError, match="set hidden_size"):
        Swift.prepare(nn.Sequential(_TupleBlock()), {"tuner": "side", "target_modules": ["0"]})
    with pytest.raises(ConfigError, match="no repeated block list"):
        Swift.prepare(model_case("mlp").build(), {"tuner": "side"})


# -- the transformer side network -------------------------------------------------------------------------------
def _trained(case, config=TRANSFORMER):
    torch.manual_seed(0)
    model = Swift.prepare(case.build(), config)
    train_steps(model, case, 5)
    return model


def test_causal_flag_follows_the_model():
    def flags(family):
        model = Swift.prepare(model_case(family).build(), TRANSFORMER)
        return {m.causal for m in model.modules() if isinstance(m, SideTransformer)}

    assert flags("llama") == {True} and flags("bert") == {False}
    model = Swift.prepare(model_case("bert").build(), {**TRANSFORMER, "causal": True})
    assert {m.causal for m in model.modules() if isinstance(m, SideTransformer)} == {True}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cached_steps_equal_the_full_forward(family):
    case = model_case(family)
    model = _trained(case)
    ids = case.batch(0).inputs["input_ids"]
    with torch.no_grad():
        full = model(input_ids=ids).logits
        out = model(input_ids=ids[:, :5], use_cache=True)
        steps = [out.logits]
        for t in range(5, ids.shape[1]):
            out = model(input_ids=ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    with torch.no_grad(), model.disable_adapters():
        assert not torch.allclose(model(input_ids=ids).logits, full, atol=1e-3)


def test_side_attention_does_not_see_the_future():
    case = model_case("llama")
    model = _trained(case)
    ids = case.batch(0).inputs["input_ids"]
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] % 60) + 2
    with torch.no_grad():
        a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert torch.equal(a[:, :-1], b[:, :-1])
    assert not torch.equal(a[:, -1], b[:, -1])


def test_left_padding_is_masked_in_the_side_attention():
    """Llama's attention is relative (RoPE), so left padding leaves the real tokens' logits as they
    were; a side attention that looked at the pads would change them."""
    case = model_case("llama")
    model = _trained(case)
    ids = case.batch(0).inputs["input_ids"][:1]
    padded = torch.cat([torch.zeros(1, 3, dtype=ids.dtype), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones_like(ids)], dim=1)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        got = model(input_ids=padded, attention_mask=mask).logits
    assert torch.isfinite(got).all()
    assert torch.allclose(got[:, 3:], plain, atol=1e-4)


def test_cache_started_without_the_side_network_is_refused():
    case = model_case("llama")
    model = _trained(case)
    ids = case.batch(0).inputs["input_ids"]
    with torch.no_grad():
        with model.disable_adapters():
            out = model(input_ids=ids[:, :5], use_cache=True)
        with pytest.raises(RuntimeError, match="cache holds 5 tokens"):
            model(input_ids=ids[:, 5:6], past_key_values=out.past_key_values, use_cache=True)
