"""``swiftune export``: a merged model that plain transformers loads, with the adapter model's logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import swiftune
from swiftune.errors import ConfigError
from swiftune.recipes.rebuild import rebuild

from cli_fixtures import ensure_trained, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return ensure_trained(tmp_path_factory.getbasetemp() / "cli-assets")


def batch(vocab: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (2, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # a left-padded row too
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.slow
def test_export_round_trip(trained, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    proc = run_cli("export", "--adapter", str(trained), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "swiftune_export.json"} <= names, names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
    assert not [n for n in names if n.startswith("adapter_")]

    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any("lora" in n for n, _ in plain.named_parameters())
    adapted = rebuild([str(trained)]).model.eval()
    base = rebuild([], model=str(Path(trained).parent / "tiny-model")).model.eval()
    inputs = batch(plain.config.vocab_size)
    with torch.no_grad():
        want = adapted(**inputs).logits
        got = plain(**inputs).logits
        untouched = base(**inputs).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (want - untouched).abs().max() > 1e-2  # the adapter changes the logits: the check can fail

    tok = AutoTokenizer.from_pretrained(out)
    assert tok("Hello")["input_ids"] == rebuild([str(trained)]).tokenizer("Hello")["input_ids"]

    # An existing, non-empty output folder is refused unless --overwrite.
    with pytest.raises(ConfigError, match="is not empty; pass --overwrite to replace it"):
        swiftune.export(adapter=str(trained), output=str(out))


def test_export_overwrite_and_errors(trained, tmp_path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    path = swiftune.export(adapter=str(trained / "final"), output=str(out), overwrite=True, dtype="bfloat16")
    assert path == out and not (out / "stale.txt").exists()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.bfloat16}
    assert not list(tmp_path.glob(".m.export-*")), "staging folder left behind"
    with pytest.raises(ConfigError, match="--adapter: required"):
        swiftune.export(output=str(tmp_path / "x"))
