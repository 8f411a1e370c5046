"""PEFT format compatibility, both ways, with PEFT 0.21 as the oracle.

Every case trains nothing: it starts from random (non-zero) LoRA weights, nudges every trainable
tensor (biases, ``modules_to_save`` copies) so that a key that is dropped or misnamed changes the
logits, saves with one library, loads with the other and compares logits within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from swiftune import Swift  # noqa: E402
from swiftune.serialization import CONFIG_NAME, WEIGHTS_NAME, read_adapter_config  # noqa: E402

ATOL = 1e-5


# -- tiny models, identical weights on every call ------------------------------------------------
from tiny_lms import bert, convnet, gpt2, llama, qwen2  # noqa: E402

MODELS: dict[str, Callable[[], nn.Module]] = {
    "llama": llama, "qwen2": qwen2, "gpt2": gpt2, "bert": bert, "convnet": convnet,
}  # fmt: skip


def logits(model: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (2, 7), generator=g)
    with torch.no_grad():
        return model(input_ids=ids).logits


def nudge_trainable(model: nn.Module) -> None:
    """Make every trainable tensor differ from its start, so each saved key matters."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


# -- the cases: (model, LoRA fields shared by both libraries) -------------------------------------
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-all-linear": ("llama", {"target_modules": "all-linear"}),
    "llama-regex": ("llama", {"target_modules": r".*\.self_attn\.(q|v)_proj", "r": 4, "lora_alpha": 16}),
    "llama-rslora": ("llama", {"target_modules": ["q_proj", "v_proj"], "use_rslora": True, "r": 4, "lora_alpha": 16}),
    "llama-embedding": ("llama", {"target_modules": ["embed_tokens", "gate_proj"]}),
    "llama-layers": (
        "llama", {"target_modules": ["q_proj", "down_proj"], "layers_to_transform": [1], "layers_pattern": "layers"}
    ),
    "llama-layers-int": ("llama", {"target_modules": ["o_proj"], "layers_to_transform": 0}),
    "llama-exclude": ("llama", {"target_modules": "all-linear", "exclude_modules": ["o_proj", "up_proj"]}),
    "qwen2-bias-all": ("qwen2", {"target_modules": ["q_proj", "v_proj"], "bias": "all", "lora_dropout": 0.1}),
    "qwen2-bias-lora-only": ("qwen2", {"target_modules": ["q_proj", "v_proj"], "bias": "lora_only"}),
    "gpt2-conv1d": ("gpt2", {"target_modules": ["c_attn", "c_proj"], "bias": "lora_only"}),
    "gpt2-all-linear-wte": ("gpt2", {"target_modules": "all-linear"}),
    "gpt2-embedding": ("gpt2", {"target_modules": ["wte", "c_fc"], "bias": "all"}),
    "bert-classifier": ("bert", {"target_modules": ["query", "value"], "modules_to_save": ["classifier"]}),
    "bert-bias-all": ("bert", {"target_modules": ["query"], "modules_to_save": ["classifier"], "bias": "all"}),
    "bert-all-linear": (
        "bert", {"target_modules": "all-linear", "modules_to_save": ["classifier"], "bias": "lora_only"}
    ),
    "convnet-conv2d": ("convnet", {"target_modules": ["emb", "conv", "pointwise", "head"], "bias": "all", "r": 3}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_swiftune_adapter_loads_in_peft(case: str, tmp_path: Path) -> None:
    family, fields = CASES[case]
    make = MODELS[family]
    base = logits(make())
    swift = Swift.prepare(make(), {"tuner": "lora", "init_lora_weights": False, **fields})
    nudge_trainable(swift)
    swift.eval()
    ours = logits(swift)
    assert (ours - base).abs().max() > 1e-3, "the adapter must change the logits for the test to mean anything"
    swift.save_pretrained(tmp_path)

    loaded = peft.PeftModel.from_pretrained(make(), str(tmp_path)).eval()
    assert isinstance(loaded.peft_config["default"], peft.LoraConfig)
    torch.testing.assert_close(logits(loaded), ours, atol=ATOL, rtol=0)


@pytest.mark.parametrize("case", list(CASES))
def test_peft_adapter_loads_in_swiftune(case: str, tmp_path: Path) -> None:
    family, fields = CASES[case]
    make = MODELS[family]
    base = logits(make())
    task = {"task_type": "SEQ_CLS"} if family == "bert" else {}
    model = peft.get_peft_model(make(), peft.LoraConfig(init_lora_weights=False, **task, **fields))
    nudge_trainable(model)
    model.eval()
    theirs = logits(model)
    assert (theirs - base).abs().max() > 1e-3
    with model.disable_adapter():  # trained base biases stay in effect, as they do here
        theirs_disabled = logits(model)
    model.save_pretrained(str(tmp_path))

    swift = Swift.from_pretrained(make(), tmp_path).eval()
    assert swift.active_adapters == ["default"]
    torch.testing.assert_close(logits(swift), theirs, atol=ATOL, rtol=0)
    with swift.disable_adapters():
        torch.testing.assert_close(logits(swift), theirs_disabled, atol=ATOL, rtol=0)
    cfg = swift.configs["default"]
    for key, value in fields.items():
        got = getattr(cfg, key)
        if key == "target_modules" and value == "all-linear":
            continue  # PEFT writes the resolved names
        if isinstance(value, list):  # PEFT stores some lists as sets
            got, value = sorted(set(got)), sorted(set(value))
        assert got == value, key


@pytest.mark.parametrize("case", list(CASES))
def test_same_keys_and_shapes_as_peft(case: str) -> None:
    """The files hold exactly PEFT's keys (PEFT adds the full base weight of embed_tokens)."""
    family, fields = CASES[case]
    ours = Swift.prepare(MODELS[family](), {"tuner": "lora", **fields}).adapter_state_dict("default")
    task = {"task_type": "SEQ_CLS"} if family == "bert" else {}
    model = peft.get_peft_model(MODELS[family](), peft.LoraConfig(**task, **fields))
    theirs = peft.get_peft_model_state_dict(model, save_embedding_layers=False)
    # PEFT's bias="all" also writes the head's bias twice more (copy and original): not needed.
    theirs = {k: v for k, v in theirs.items() if ".modules_to_save." not in k and ".original_module." not in k}
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_swiftune_config_file_is_peft_shaped(tmp_path: Path) -> None:
    swift = Swift.prepare(llama(), {"tuner": "lora", "r": 4, "target_modules": ["q_proj"]})
    swift.save_pretrained(tmp_path)
    data = json.loads((tmp_path / CONFIG_NAME).read_text())
    # No "tuner": peft_type LORA names the lora tuner already, and PEFT warns about keys it lacks.
    assert data["peft_type"] == "LORA" and "tuner" not in data and data["r"] == 4
    assert read_adapter_config(tmp_path)["tuner"] == "lora"
    assert (tmp_path / WEIGHTS_NAME).is_file()
    assert not list(tmp_path.glob("*.bin"))


# -- adapter names and several adapters ------------------------------------------------------------
A_FIELDS = {"target_modules": ["q_proj", "v_proj"], "r": 4}
B_FIELDS = {"target_modules": ["gate_proj", "v_proj"], "r": 2, "lora_alpha": 4}


def _swift_two(make: Callable[[], nn.Module]):
    swift = Swift.prepare(
        make(),
        {
            "default": {"tuner": "lora", "init_lora_weights": False, **A_FIELDS},
            "chat": {"tuner": "lora", "init_lora_weights": False, **B_FIELDS},
        },
    )
    return swift.eval()


def test_non_default_name_swiftune_to_peft(tmp_path: Path) -> None:
    swift = Swift.prepare(llama(), {"tuner": "lora", "init_lora_weights": False, **A_FIELDS}, adapter_name="chat")
    swift.eval()
    ours = logits(swift)
    swift.save_pretrained(tmp_path)
    assert (tmp_path / "chat" / WEIGHTS_NAME).is_file() and not (tmp_path / CONFIG_NAME).exists()

    loaded = peft.PeftModel.from_pretrained(llama(), str(tmp_path / "chat"), adapter_name="chat").eval()
    assert loaded.active_adapter == "chat"
    torch.testing.assert_close(logits(loaded), ours, atol=ATOL, rtol=0)


def test_non_default_name_peft_to_swiftune(tmp_path: Path) -> None:
    model = peft.get_peft_model(llama(), peft.LoraConfig(init_lora_weights=False, **A_FIELDS), adapter_name="chat")
    model.eval()
    theirs = logits(model)
    model.save_pretrained(str(tmp_path))
    assert (tmp_path / "chat" / CONFIG_NAME).is_file()

    swift = Swift.from_pretrained(llama(), tmp_path, subfolder="chat").eval()
    assert list(swift.tuners) == ["chat"] and swift.active_adapters == ["chat"]
    torch.testing.assert_close(logits(swift), theirs, atol=ATOL, rtol=0)
    # The root folder of a single adapter can be loaded under any name.
    renamed = Swift.from_pretrained(llama(), tmp_path / "chat", adapter_name="other").eval()
    assert list(renamed.tuners) == ["other"]
    torch.testing.assert_close(logits(renamed), theirs, atol=ATOL, rtol=0)


def test_two_adapters_swiftune_to_peft(tmp_path: Path) -> None:
    swift = _swift_two(llama)
    both = logits(swift)
    swift.set_active_adapters("default")
    only_a = logits(swift)
    swift.set_active_adapters("chat")
    only_b = logits(swift)
    swift.save_pretrained(tmp_path)
    assert (tmp_path / WEIGHTS_NAME).is_file() and (tmp_path / "chat" / WEIGHTS_NAME).is_file()

    loaded = peft.PeftModel.from_pretrained(llama(), str(tmp_path)).eval()
    loaded.load_adapter(str(tmp_path / "chat"), adapter_name="chat")
    torch.testing.assert_close(logits(loaded), only_a, atol=ATOL, rtol=0)
    loaded.set_adapter("chat")
    torch.testing.assert_close(logits(loaded), only_b, atol=ATOL, rtol=0)
    loaded.base_model.set_adapter(["default", "chat"])
    torch.testing.assert_close(logits(loaded), both, atol=ATOL, rtol=0)


def test_two_adapters_peft_to_swiftune(tmp_path: Path) -> None:
    model = peft.get_peft_model(llama(), peft.LoraConfig(init_lora_weights=False, **A_FIELDS))
    model.add_adapter("chat", peft.LoraConfig(init_lora_weights=False, **B_FIELDS))
    model.eval()
    only_a = logits(model)
    model.set_adapter("chat")
    only_b = logits(model)
    model.base_model.set_adapter(["default", "chat"])
    both = logits(model)
    model.save_pretrained(str(tmp_path))

    swift = Swift.from_pretrained(llama(), tmp_path, adapter_names=["default", "chat"]).eval()
    assert sorted(swift.tuners) == ["chat", "default"]
    torch.testing.assert_close(logits(swift), both, atol=ATOL, rtol=0)
    swift.set_active_adapters(["default"])
    torch.testing.assert_close(logits(swift), only_a, atol=ATOL, rtol=0)
    swift.set_active_adapters(["chat"])
    torch.testing.assert_close(logits(swift), only_b, atol=ATOL, rtol=0)


def test_peft_adapter_merges_like_peft(tmp_path: Path) -> None:
    """A PEFT adapter loaded here merges into the same weights PEFT's merge_and_unload gives."""
    model = peft.get_peft_model(gpt2(), peft.LoraConfig(init_lora_weights=False, target_modules=["c_attn", "wte"]))
    model.eval()
    model.save_pretrained(str(tmp_path))
    theirs = model.merge_and_unload().state_dict()
    ours = Swift.from_pretrained(gpt2(), tmp_path).merge_and_unload().state_dict()
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], atol=ATOL, rtol=0, msg=key)


@pytest.mark.parametrize("alpha, exact", [(16, True), (10, False)], ids=["scaling-2", "scaling-1.25"])
def test_bf16_autocast_training_matches_peft(alpha: int, exact: bool, tmp_path: Path) -> None:
    """Under bf16 autocast swiftune scales LoRA's rank-r activations, PEFT its output: the same
    bits when the scaling is a power of two, within bf16 rounding otherwise."""
    fields = {"target_modules": "all-linear", "r": 8, "lora_alpha": alpha}
    theirs = peft.get_peft_model(llama(), peft.LoraConfig(init_lora_weights=False, **fields))
    theirs.save_pretrained(str(tmp_path))
    ours = Swift.from_pretrained(llama(), tmp_path, is_trainable=True)
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3))
    results = []
    for model in (ours, theirs):
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n[n.index("layers."):]: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (loss, grads), (peft_loss, peft_grads) = results
    assert grads.keys() == peft_grads.keys() and len(grads) == 2 * 7 * 2
    if exact:
        assert torch.equal(loss, peft_loss) and all(torch.equal(grads[k], peft_grads[k]) for k in grads)
    else:
        assert loss.item() == pytest.approx(peft_loss.item(), rel=1e-2)
        assert max((grads[k] - peft_grads[k]).abs().max().item() / peft_grads[k].abs().max().item() for k in grads) < 5e-2
        assert not all(torch.equal(grads[k], peft_grads[k]) for k in grads)  # the rounding really differs
