"""The ``lora`` tuner: layer types, config fields, merging, several adapters, training scope."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from swiftune import ConfigError, Swift, SwiftModel  # noqa: E402
from swiftune.tuners.lora import LoraConfig  # noqa: E402
from swiftune.tuners.lora.layer import LoraConv2d, LoraEmbedding, LoraLayer, LoraLinear  # noqa: E402

ATOL = 1e-5


# -- tiny models ----------------------------------------------------------------------------------
from tiny_lms import gpt2, llama, qwen2  # noqa: E402
from tiny_lms import convnet as _convnet  # noqa: E402


def convnet() -> nn.Module:
    return _convnet().requires_grad_(False)  # frozen like a prepared model: same conv kernels


IDS = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def lora(**fields: Any) -> dict[str, Any]:
    return {"tuner": "lora", **fields}


def wrapped(model: nn.Module) -> dict[str, LoraLayer]:
    """LoRA layers by their name in the base model."""
    return {n.removeprefix("model."): m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


# -- layer types, init ---------------------------------------------------------------------------
def test_layer_types_and_peft_field_names() -> None:
    import peft

    assert set(LoraConfig.model_fields) - set(peft.LoraConfig.__dataclass_fields__) == {"tuner"}
    swift = Swift.prepare(convnet(), lora(target_modules=["emb", "conv", "pointwise", "head"]))
    kinds = {n: type(m) for n, m in wrapped(swift).items()}
    assert kinds == {"emb": LoraEmbedding, "conv": LoraConv2d, "pointwise": LoraConv2d, "head": LoraLinear}
    g = Swift.prepare(gpt2(), lora(target_modules=["c_attn"]))
    layer = wrapped(g)["transformer.h.0.attn.c_attn"]
    assert layer.fan_in_fan_out and layer.lora_A["default"].weight.shape == (8, 32)
    assert layer.lora_B["default"].weight.shape == (96, 8)


@pytest.mark.parametrize("make", [llama, gpt2, convnet])
@pytest.mark.parametrize("init", [True, "gaussian"])
def test_identity_at_init(make: Callable[[], nn.Module], init: Any) -> None:
    base = logits(make())
    targets = ["emb", "conv", "pointwise", "head"] if make is convnet else "all-linear"
    swift = Swift.prepare(make(), lora(target_modules=targets, init_lora_weights=init, r=4))
    torch.testing.assert_close(logits(swift), base, atol=0, rtol=0)
    layer = next(m for m in wrapped(swift).values() if isinstance(m, LoraLinear))
    a = layer.lora_A["default"].weight
    assert a.abs().sum() > 0 and layer.lora_B["default"].weight.abs().sum() == 0
    if init == "gaussian":
        assert 0.1 < a.std().item() < 0.5  # normal(0, 1/r) with r=4


def test_embedding_init_follows_peft() -> None:
    swift = Swift.prepare(llama(), lora(target_modules=["embed_tokens"]))
    emb = wrapped(swift)["model.embed_tokens"]
    assert emb.lora_embedding_A["default"].abs().sum() == 0 and emb.lora_embedding_B["default"].abs().sum() > 0


def test_init_false_changes_outputs() -> None:
    base = logits(llama())
    swift = Swift.prepare(llama(), lora(target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    assert (logits(swift) - base).abs().max() > 1e-3


@pytest.mark.parametrize("rslora", [False, True])
def test_linear_forward_formula(rslora: bool) -> None:
    """``W x + b + scaling * B A x`` with scaling = alpha / r, or alpha / sqrt(r) for rsLoRA."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(6, 5))
    x = torch.randn(3, 6)
    swift = Swift.prepare(copy.deepcopy(base), lora(target_modules=["0"], r=4, lora_alpha=6, use_rslora=rslora,
                                                    init_lora_weights=False))  # fmt: skip
    layer = wrapped(swift)["0"]
    scaling = 6 / (2.0 if rslora else 4.0)
    assert layer.scaling["default"] == pytest.approx(scaling)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = base(x) + scaling * (x @ a.T @ b.T)
    torch.testing.assert_close(swift(x), expected, atol=ATOL, rtol=0)


def test_dropout_only_in_training() -> None:
    swift = Swift.prepare(llama(), lora(target_modules=["q_proj"], lora_dropout=0.5, init_lora_weights=False))
    swift.eval()
    torch.testing.assert_close(logits(swift), logits(swift), atol=0, rtol=0)
    swift.train()
    assert (logits(swift) - logits(swift)).abs().max() > 1e-4


# -- target selection ------------------------------------------------------------------------------
LLAMA_LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def _targets(model_fn: Callable[[], nn.Module], **fields: Any) -> set[str]:
    return set(wrapped(Swift.prepare(model_fn(), lora(**fields))))


def test_target_list_matches_exact_names_and_suffixes() -> None:
    assert _targets(llama, target_modules=["q_proj"]) == {f"model.layers.{i}.self_attn.q_proj" for i in range(2)}
    assert _targets(llama, target_modules=["model.layers.1.mlp.up_proj"]) == {"model.layers.1.mlp.up_proj"}
    # A suffix matches whole name parts only: "proj" is not a suffix of "...q_proj".
    with pytest.raises(ConfigError, match="matched no"):
        Swift.prepare(llama(), lora(target_modules=["proj"]))


def test_target_string_is_a_full_regex() -> None:
    assert _targets(llama, target_modules=r".*\.1\.self_attn\.[qk]_proj") == {
        "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj"
    }  # fmt: skip
    with pytest.raises(ConfigError, match="matched no"):
        Swift.prepare(llama(), lora(target_modules="q_proj"))  # a regex must match the full name


def test_all_linear_skips_output_head() -> None:
    names = _targets(llama, target_modules="all-linear")
    assert {n.rsplit(".", 1)[1] for n in names} == LLAMA_LINEAR and len(names) == 14
    assert "lm_head" not in names
    g = _targets(gpt2, target_modules="all-linear")  # Conv1D counts as linear; the tied head does not
    assert len(g) == 8 and "lm_head" not in g


def test_exclude_modules() -> None:
    names = _targets(llama, target_modules="all-linear", exclude_modules=["o_proj", "up_proj"])
    assert {n.rsplit(".", 1)[1] for n in names} == LLAMA_LINEAR - {"o_proj", "up_proj"}
    names = _targets(llama, target_modules=["q_proj", "v_proj"], exclude_modules=r".*\.0\..*")
    assert names == {"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}


def test_layers_to_transform() -> None:
    names = _targets(llama, target_modules="all-linear", layers_to_transform=[1], layers_pattern="layers")
    assert len(names) == 7 and all(n.startswith("model.layers.1.") for n in names)
    assert _targets(gpt2, target_modules=["c_attn"], layers_to_transform=0) == {"transformer.h.0.attn.c_attn"}


def test_modules_to_save_trains_a_copy() -> None:
    swift = Swift.prepare(llama(), lora(target_modules=["q_proj"], modules_to_save=["lm_head"]))
    head = swift.model.lm_head
    original = head.base_layer.weight.clone()
    trainable = {n for n, p in swift.named_parameters() if p.requires_grad}
    assert "model.lm_head.modules_to_save.default.weight" in trainable
    assert not any("base_layer" in n for n in trainable)
    with torch.no_grad():
        head.modules_to_save["default"].weight.add_(1.0)
    changed = logits(swift)
    with swift.disable_adapters():
        torch.testing.assert_close(logits(swift), logits(llama()), atol=0, rtol=0)
    assert (changed - logits(llama())).abs().max() > 1e-2
    torch.testing.assert_close(head.base_layer.weight, original, atol=0, rtol=0)
    assert "base_model.model.lm_head.weight" in swift.adapter_state_dict("default")


@pytest.mark.parametrize(
    ("bias", "expected"),
    [("none", set()), ("lora_only", {"q_proj", "v_proj"}), ("all", {"q_proj", "k_proj", "v_proj"})],
)
def test_bias_modes(bias: str, expected: set[str]) -> None:
    swift = Swift.prepare(qwen2(), lora(target_modules=["q_proj", "v_proj"], bias=bias))
    trainable_biases = {n for n, p in swift.named_parameters() if p.requires_grad and n.endswith("bias")}
    assert {n.replace(".base_layer", "").split(".")[-2] for n in trainable_biases} == expected
    saved = {k for k in swift.adapter_state_dict("default") if k.endswith("bias")}
    assert len(saved) == len(trainable_biases) == 2 * len(expected)


def test_training_step_changes_only_adapter_parameters() -> None:
    swift = Swift.prepare(qwen2(), lora(target_modules=["q_proj", "v_proj"], bias="lora_only"))
    swift.train()
    before = {n: p.detach().clone() for n, p in swift.named_parameters()}
    trainable = {n for n, p in swift.named_parameters() if p.requires_grad}
    opt = torch.optim.SGD([p for p in swift.parameters() if p.requires_grad], lr=0.5)
    losses = []
    for _ in range(3):
        loss = swift(input_ids=IDS, labels=IDS).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    changed = {n for n, p in swift.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed) and any(n.endswith("bias") for n in changed)
    assert not any("lora" not in n and not n.endswith("bias") for n in changed)


# -- merging --------------------------------------------------------------------------------------
MERGE_CASES = {
    "linear": (llama, ["q_proj", "down_proj"]),
    "embedding": (llama, ["embed_tokens", "v_proj"]),
    "conv1d": (gpt2, ["c_attn", "c_proj", "c_fc"]),
    "conv2d": (convnet, ["emb", "conv", "pointwise", "head"]),
}


def _random_adapter(make: Callable[[], nn.Module], targets: list[str], **extra: Any) -> SwiftModel:
    return Swift.prepare(make(), lora(target_modules=targets, init_lora_weights=False, r=4, lora_alpha=8, **extra))


@pytest.mark.parametrize("case", list(MERGE_CASES))
def test_merge_unmerge_unload_exact(case: str) -> None:
    make, targets = MERGE_CASES[case]
    base_logits = logits(make())
    base_state = {k: v.clone() for k, v in make().state_dict().items()}
    swift = _random_adapter(make, targets)
    out = logits(swift)
    assert (out - base_logits).abs().max() > 1e-3

    swift.merge_adapter()
    assert all(not layer._run for layer in wrapped(swift).values())  # the branch no longer runs ...
    torch.testing.assert_close(logits(swift), out, atol=ATOL, rtol=0)  # ... the weights carry it
    swift.unmerge_adapter()
    torch.testing.assert_close(logits(swift), out, atol=ATOL, rtol=0)
    restored = {k.replace("base_layer.", ""): v for k, v in swift.model.state_dict().items() if "lora_" not in k}
    for key, value in base_state.items():
        torch.testing.assert_close(restored[key], value, atol=ATOL, rtol=0, msg=key)

    merged = swift.merge_and_unload()
    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert set(merged.state_dict()) == set(base_state)
    torch.testing.assert_close(logits(merged), out, atol=ATOL, rtol=0)


def test_unload_gives_the_base_model_back() -> None:
    swift = _random_adapter(llama, ["q_proj", "embed_tokens"])
    plain = swift.unload()
    assert not any(isinstance(m, LoraLayer) for m in plain.modules())
    torch.testing.assert_close(logits(plain), logits(llama()), atol=0, rtol=0)


# -- several adapters -----------------------------------------------------------------------------
def _manual_merge(base: nn.Module, swift: SwiftModel, names: list[str]) -> nn.Module:
    """Add ``scaling * B @ A`` of each named adapter to a copy of the base weights, by hand."""
    base_params = dict(base.named_parameters())
    with torch.no_grad():
        for path, layer in wrapped(swift).items():
            for name in names:
                if name not in layer.scaling:
                    continue
                delta = layer.lora_B[name].weight @ layer.lora_A[name].weight * layer.scaling[name]
                base_params[f"{path}.weight"].add_(delta)
    return base


def test_several_active_adapters_sum_their_deltas() -> None:
    swift = Swift.prepare(
        llama(),
        {
            "a": lora(target_modules=["q_proj", "v_proj"], init_lora_weights=False, r=4),
            "b": lora(target_modules=["v_proj", "o_proj"], init_lora_weights=False, r=2, lora_alpha=3, use_rslora=True),
        },
    )
    assert swift.active_adapters == ["a", "b"]
    both = logits(swift)
    torch.testing.assert_close(both, logits(_manual_merge(llama(), swift, ["a", "b"])), atol=ATOL, rtol=0)
    swift.set_active_adapters("a")
    only_a = logits(swift)
    torch.testing.assert_close(only_a, logits(_manual_merge(llama(), swift, ["a"])), atol=ATOL, rtol=0)
    assert (both - only_a).abs().max() > 1e-3
    swift.set_active_adapters(["a", "b"])
    swift.merge_adapter()
    torch.testing.assert_close(logits(swift), both, atol=ATOL, rtol=0)
    swift.unmerge_adapter()
    with swift.disable_adapters():  # after unmerge the base is W + d - d: equal up to rounding
        torch.testing.assert_close(logits(swift), logits(llama()), atol=ATOL, rtol=0)
    torch.testing.assert_close(logits(swift), both, atol=ATOL, rtol=0)


def test_delete_adapter_restores_plain_modules() -> None:
    swift = Swift.prepare(
        llama(), {"a": lora(target_modules=["q_proj"]), "b": lora(target_modules=["q_proj", "k_proj"])}
    )
    swift.delete_adapter("b")
    assert set(wrapped(swift)) == {f"model.layers.{i}.self_attn.q_proj" for i in range(2)}
    assert all(set(layer.scaling) == {"a"} for layer in wrapped(swift).values())
    swift.delete_adapter("a")
    assert not wrapped(swift) and swift.active_adapters == []
    assert isinstance(swift.model.model.layers[0].self_attn.q_proj, nn.Linear)
