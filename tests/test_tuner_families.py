"""Every built-in tuner with its DEFAULT config on every registered decoder family that
transformers implements (a tiny random model from the family's architecture): one training step
gives a finite loss, changes the adapter's parameters and the logits, and nothing else.

Then ``swiftune.sft`` (the code path of ``swiftune sft --tuner NAME``) trains a tiny llama with the
default config of each tuner for two steps, and the result loads back through ``infer``'s rebuild.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import transformers

import swiftune
from swiftune import Swift, registries
from swiftune.loading.vision import VISION_LANGUAGE_TYPES
from swiftune.model_family import ModelFamily

from cli_fixtures import TRAIN_FLAGS, ensure_data, ensure_model
from tiny_lms import TINY

#: The built-in tuners tested across model families here (qlora and peft have their own test files).
TUNERS = ["lora", "adapter", "prefix", "prompt", "side", "restuning", "part", "bitfit", "full"]

def decoder_families() -> list[ModelFamily]:
    """Text decoders transformers implements; vision-language families (their tiny models need a vision
    tower and images) have their own end-to-end tests in test_vision_language.py."""
    return [f for _, f in registries.models.items() if f.task == "causal-lm" and f.transformers_implements()
            and f.model_types[0] not in VISION_LANGUAGE_TYPES]


def architectures() -> dict[str, ModelFamily]:
    """One family per (model_type, architecture): families sharing one build the same tiny model."""
    out: dict[str, ModelFamily] = {}
    for fam in decoder_families():
        out.setdefault(f"{fam.model_types[0]}:{fam.architectures[0]}", fam)
    return out


ARCHS = architectures()


def tiny_decoder(family: ModelFamily) -> torch.nn.Module:
    config = transformers.AutoConfig.for_model(family.model_types[0], **TINY[family.model_types[0]])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(transformers, family.architectures[0])(config).eval()


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("tuner", TUNERS)
def test_default_config_trains_one_step(tuner: str, arch: str) -> None:
    family = ARCHS[arch]
    base = tiny_decoder(family)
    base_before = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = Swift.prepare(base, {"tuner": tuner})
    own = dict(model.tuners["default"].named_trainable_parameters(model.model))
    assert own, f"{tuner} on {family.name}: no trainable parameters"
    assert {id(p) for p in own.values()} == {id(p) for p in model.parameters() if p.requires_grad}

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 64, (2, 8), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        logits_before = model(**batch).logits[:, -8:].clone()
    before = {n: p.detach().clone() for n, p in own.items()}
    opt = torch.optim.AdamW(list(own.values()), lr=1e-2)
    loss = model(**batch, labels=ids).loss
    assert math.isfinite(loss.item()), f"{tuner} on {family.name}: loss {loss.item()}"
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in own.values())
    opt.step()

    changed = [n for n, p in own.items() if not torch.equal(p.detach(), before[n])]
    assert changed, f"{tuner} on {family.name}: one step changed none of the adapter's parameters"
    with torch.no_grad():
        logits_after = model(**batch).logits[:, -8:]
    assert (logits_after - logits_before).abs().max().item() > 1e-6, f"{tuner} on {family.name}: logits unchanged"
    if not model.tuners["default"].trains_base_parameters:
        moved = [n for n, p in base.named_parameters() if n in base_before and not torch.equal(p, base_before[n])]
        assert not moved, f"{tuner} on {family.name}: base parameters changed: {moved[:5]}"


# -- through swiftune.sft (the `swiftune sft --tuner NAME` code path) ------------------------------------------
SFT_TUNERS = ["part", "bitfit", "full", "adapter", "side", "restuning"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    return ensure_model(root), ensure_data(root)


def _flags_as_kwargs() -> dict:
    """TRAIN_FLAGS as keyword arguments (pydantic converts the strings, as it does for flags)."""
    return {k.lstrip("-").replace("-", "_"): v for k, v in zip(TRAIN_FLAGS[0::2], TRAIN_FLAGS[1::2])}


@pytest.mark.slow
@pytest.mark.parametrize("tuner", SFT_TUNERS)
def test_sft_with_default_config(assets, tmp_path, tuner: str) -> None:

    from swiftune.recipes.rebuild import rebuild

    model_dir, data = assets
    out = tmp_path / tuner
    result = swiftune.sft(model=str(model_dir), dataset=[f"{data}#8"], output_dir=str(out), tuner=tuner,
                          max_steps=2, save_steps=2, val_ratio=0, **_flags_as_kwargs())
    assert result.global_step == 2
    built = rebuild([str(out)])
    assert built.model.active_adapters == ["default"] and built.model.tuners["default"].name == tuner
    weights = built.model.tuners["default"].read_weights(result.adapter_dir)  # full: a model/ folder
    assert weights and all(torch.isfinite(t).all() for t in weights.values())
    reloaded = built.model.adapter_state_dict("default")
    assert set(reloaded) == set(weights) and all(torch.equal(reloaded[k], weights[k]) for k in weights)


@pytest.mark.slow
def test_cli_sft_part_with_a_regex_flag(assets, tmp_path) -> None:
    from safetensors.torch import load_file

    from cli_fixtures import run_cli

    model_dir, data = assets
    out = tmp_path / "run"
    proc = run_cli("sft", "--model", str(model_dir), "--dataset", f"{data}#8", "--output-dir", str(out),
                   "--tuner", "part", "--target-parameters", r"model\.layers\.1\.mlp\..*", "--max-steps", "2",
                   "--save-steps", "2", "--val-ratio", "0", *TRAIN_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = load_file(out / "final" / "adapter_model.safetensors")
    assert set(weights) == {f"model.layers.1.mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")}
    assert all(t.abs().max() > 0 for t in weights.values())
