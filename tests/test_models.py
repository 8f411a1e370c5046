"""Model families: registry contents, matching, architecture keys, and the family-coverage test
(every family transformers implements gets LoRA on its default targets and trains one step)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import transformers
from torch import nn

import swiftune
from swiftune import ModelFamily, Swift, registries
from swiftune.loading import GENERIC, family_for
from swiftune.loading.vision import VISION_LANGUAGE_TYPES
from swiftune.model_family import ArchitectureKeys, normalize_task

from tiny_lms import LLAMA_LIKE, TINY

#: How many layers a built-in family's default targets should wrap in the tiny model (2 blocks each):
#: e.g. llama 7 per block; bert 6 per block + the pooler; t5/bart 6 per encoder + 10 per decoder block.
EXPECTED_TARGETS = {
    "llama": 14, "qwen2": 14, "qwen3": 14, "mistral": 14, "gemma": 14, "gemma2": 14, "phi3": 8,
    "gpt2": 8, "bloom": 8, "bert": 13, "t5": 32, "bart": 32, "vit": 12, "swin": 12,
}
AUTO = {
    "causal-lm": transformers.AutoModelForCausalLM,
    "seq2seq-lm": transformers.AutoModelForSeq2SeqLM,
    "sequence-classification": transformers.AutoModelForSequenceClassification,
    "image-classification": transformers.AutoModelForImageClassification,
}


def implemented() -> list[ModelFamily]:
    """Families transformers implements; vision-language ones (their tiny models need a vision tower and
    images) have their own end-to-end tests in test_vision_language.py."""
    return [f for _, f in registries.models.items()
            if f.transformers_implements() and f.model_types[0] not in VISION_LANGUAGE_TYPES]


def tiny_model(family: ModelFamily) -> nn.Module:
    config = transformers.AutoConfig.for_model(family.model_types[0], **TINY[family.model_types[0]])
    torch.manual_seed(0)
    return AUTO[family.task].from_config(config).eval()


def batch_for(family: ModelFamily) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 64, (2, 8), generator=gen)
    if family.task == "image-classification":
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=gen), "labels": torch.tensor([0, 2])}
    if family.task == "sequence-classification":
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 2])}
    if family.task == "seq2seq-lm":
        return {"input_ids": ids, "labels": torch.randint(1, 64, (2, 5), generator=gen)}
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


# -- the registry ------------------------------------------------------------------------------------
REQUIRED = [
    "llama", "smollm2", "openbuddy-llama", "qwen2", "qwen2.5", "qwen3", "mistral", "gemma", "phi3", "gpt2",
    "bert", "t5", "vit", "qwen", "qwen-vl", "baichuan", "chatglm2", "internlm", "polylm-13b", "seqgpt-560m",
]


def test_required_families_are_registered_by_the_model_zoo_plugin():
    assert set(REQUIRED) <= set(registries.models.names())
    assert all(registries.models.entry(n).plugin == "model_zoo" for n in REQUIRED)
    assert registries.models.get("smollm2").hf_ids[0] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "qwen/Qwen-7B-Chat" in registries.models.get("qwen").ms_ids


def test_cli_lists_the_families(capsys):
    from swiftune.cli import main

    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        line = next((x for x in out.splitlines() if x.split()[:1] == [name]), "")
        assert "model_zoo" in line and registries.models.get(name).description in line, name


def test_every_family_is_well_formed():
    families = dict(registries.models.items())
    seen: dict[str, str] = {}
    for name, fam in families.items():
        assert fam.description and fam.architectures and fam.model_types, name
        if fam.template is not None:
            assert fam.template in registries.templates, f"{name}: template {fam.template} is not registered"
        if fam.parent is not None:
            assert set(families[fam.parent].architectures) & set(fam.architectures), name
        if not fam.transformers_implements() and fam.task != "text-to-image":  # diffusers pipelines: not transformers
            assert fam.trust_remote_code, f"{name}: transformers lacks its architecture, so it needs remote code"
        for hub_id in (*fam.hf_ids, *(f"ms::{i}" for i in fam.ms_ids)):
            assert hub_id not in seen, f"{hub_id} claimed by {seen.get(hub_id)} and {name}"
            seen[hub_id] = name
            assert family_for({"architectures": [fam.architectures[0]], "model_type": fam.model_types[0]}, hub_id) is fam


def test_remote_code_families_are_the_expected_ones():
    remote = {f.name for _, f in registries.models.items() if not f.transformers_implements()}
    assert {"qwen", "qwen-vl", "baichuan", "chatglm2", "internlm"} <= remote
    assert not remote & {"llama", "qwen2", "gpt2", "bert", "t5", "vit"}
    # ``swiftune list models`` says so: the description of every remote-code family mentions it.
    assert all("remote code" in f.description for _, f in registries.models.items() if f.trust_remote_code)
    plugin_family = ModelFamily(name="x", description="a plugin's family", trust_remote_code=True)
    assert plugin_family.description == "a plugin's family [needs remote code]"


def test_every_implemented_family_has_a_tiny_config():
    missing = {f.name: f.model_types[0] for f in implemented() if f.model_types[0] not in TINY}
    assert not missing, f"add tiny configs for {missing}"


def test_task_names_are_normalised():
    assert normalize_task("causal_lm") == "causal-lm"
    assert normalize_task("seq2seq") == "seq2seq-lm"
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        normalize_task("poetry")
    with pytest.raises(ValueError, match="unknown task"):
        ModelFamily(name="x", description="x", task="poetry")


# -- matching ----------------------------------------------------------------------------------------
def test_refined_families_are_picked_by_hub_id_or_folder_name():
    llama = transformers.LlamaConfig(**LLAMA_LIKE)
    qwen2 = transformers.Qwen2Config(**LLAMA_LIKE)
    assert family_for(llama).name == "llama"
    assert family_for(llama, "HuggingFaceTB/SmolLM2-135M-Instruct").name == "smollm2"
    assert family_for(llama, "/data/models/SmolLM2-360M-Instruct/").name == "smollm2"
    assert family_for(llama, "/hf/hub/models--HuggingFaceTB--SmolLM2-1.7B-Instruct/snapshots/abc").name == "smollm2"
    assert family_for(llama, "smollm2-135m-instruct").name == "smollm2"
    assert family_for(llama, "modelscope/Llama-2-7b-chat-ms").name == "llama2"
    assert family_for(qwen2, "ms::qwen/Qwen2.5-7B-Instruct").name == "qwen2.5"
    assert family_for(qwen2, "/tmp/my-finetune").name == "qwen2"
    # An id of another architecture's family does not override the architecture.
    assert family_for(qwen2, "HuggingFaceTB/SmolLM2-135M-Instruct").name == "qwen2"


def test_remote_code_families_match_config_dicts():
    qwen = {"architectures": ["QWenLMHeadModel"], "model_type": "qwen"}
    assert family_for(qwen).name == "qwen"
    assert family_for({**qwen, "_name_or_path": "qwen/Qwen-VL-Chat"}).name == "qwen-vl"
    assert family_for({"architectures": ["ChatGLMModel"], "model_type": "chatglm"}).name == "chatglm2"
    assert family_for({"architectures": ["BaiChuanForCausalLM"]}).name == "baichuan"
    assert family_for({"model_type": "internlm"}).trust_remote_code


def test_unknown_model_falls_back_to_all_linear_with_one_notice(caplog):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(4, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(torch.relu(self.inp(x)))

    model = Tiny()
    with caplog.at_level(logging.WARNING, logger="swiftune.loading"):
        fam = family_for(model)
    assert fam is GENERIC and fam.default_target_modules == "all-linear"
    notices = [r.getMessage() for r in caplog.records if r.name == "swiftune.loading"]
    assert len(notices) == 1 and "\n" not in notices[0] and "all linear layers" in notices[0]
    swift = Swift.prepare(model, {"tuner": "lora", "target_modules": fam.default_target_modules, "r": 2})
    wrapped = {n.rsplit(".", 2)[0] for n, p in swift.named_parameters() if p.requires_grad}
    assert any("inp" in n for n in wrapped) and any("out" in n for n in wrapped)


def test_a_plugin_can_add_a_family():
    fam = ModelFamily(
        name="test-tinyllama", description="a plugin's family", architectures=("LlamaForCausalLM",),
        model_types=("llama",), parent="llama", hf_ids=("acme/tiny-llama",), target_modules=("q_proj", "v_proj"),
    )

    class Plugin:
        @swiftune.hookimpl
        def register_models(self, register):
            register(fam)

    registries.host.add_plugin(Plugin(), name="test-models")
    try:
        assert registries.models.get("test-tinyllama") is fam
        assert family_for(transformers.LlamaConfig(**LLAMA_LIKE), "acme/tiny-llama") is fam
    finally:
        registries.host.remove_plugin("test-models")
    assert "test-tinyllama" not in registries.models


# -- the family-coverage test -------------------------------------------------------------------------
@pytest.mark.parametrize("family", implemented(), ids=lambda f: f.name)
def test_family_gets_lora_on_its_default_targets_and_trains_one_step(family: ModelFamily):
    model = tiny_model(family)
    hub_id = family.hf_ids[0] if family.hf_ids else None
    assert family_for(model, hub_id) is family
    if family.parent is None:
        assert family_for(model) is family

    # Architecture keys point at the real parts of the model.
    (emb,) = family.module_names(model, "embedding")
    assert model.get_submodule(emb) is model.get_input_embeddings()
    (layers,) = family.module_names(model, "layers")
    assert isinstance(model.get_submodule(layers), nn.ModuleList) and len(model.get_submodule(layers)) == 2
    (head,) = family.module_names(model, "lm_head")
    out = model.get_output_embeddings()
    assert model.get_submodule(head) is out if out is not None else isinstance(model.get_submodule(head), nn.Linear)
    for key in ("attention", "mlp"):
        if getattr(family.keys, key) is not None:
            assert len(family.module_names(model, key)) == 2, key

    # LoRA on the family's default targets, one optimiser step.
    model_type = family.model_types[0]
    swift = Swift.prepare(model, {"tuner": "lora", "target_modules": family.default_target_modules, "r": 4})
    lora = {n: p for n, p in swift.named_parameters() if p.requires_grad}
    wrapped = {n.split(".lora_")[0] for n in lora}
    if registries.models.entry(family.name).plugin == "model_zoo":
        assert len(wrapped) == EXPECTED_TARGETS[model_type], sorted(wrapped)
    else:  # another plugin's family: its targets are its own business, but each block gets some
        assert all(any(n.startswith(f"{layers}.{i}.") or f".{layers}.{i}." in n for n in wrapped) for i in (0, 1))
    assert all(".lora_" in n for n in lora)
    before = {n: p.detach().clone() for n, p in swift.named_parameters()}
    opt = torch.optim.AdamW(lora.values(), lr=1e-2)
    loss = swift(**batch_for(family)).loss
    assert math.isfinite(loss.item())
    loss.backward()
    opt.step()
    after = dict(swift.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert changed and changed <= set(lora)
    assert all(n in changed for n in lora if ".lora_B." in n)


def test_architecture_keys_reject_unknown_names():
    fam = ModelFamily(name="x", description="x", keys=ArchitectureKeys(layers="layers"))
    with pytest.raises(ValueError, match="unknown architecture key 'head'"):
        fam.module_names(nn.Linear(2, 2), "head")
    assert fam.module_names(nn.Linear(2, 2), "attention") == []
