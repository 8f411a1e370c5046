"""Vision-language fine-tuning (Qwen2-VL, LLaVA) on tiny random models saved as folders, with images
made in the test: label masks, what trains, sft / infer / export through the recipes, bad images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from swiftune import Swift, registries
from swiftune.data.errors import DataError
from swiftune.data.multimodal import encode_image_chat
from swiftune.loading import load_model
from swiftune.recipes.arguments import ExportArguments, InferArguments, SftArguments
from swiftune.recipes.bridge import resolve_template
from swiftune.recipes.vision import ImageTextCollator, frozen_parts_config
from swiftune.testing.vision import make_images, tiny_vision_model

KINDS = ("qwen2-vl", "qwen2.5-vl", "llava")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vlm")
    return {kind: tiny_vision_model(root / kind, kind) for kind in KINDS}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """data/train.jsonl: ms-swift rows, image paths relative to the file; 12 rows over 3 images."""
    root = tmp_path_factory.mktemp("data")
    images = make_images(root / "images", 3)
    rows = [{"messages": [{"role": "user", "content": "<image>What colour is the square ?"},
                          {"role": "assistant", "content": f"This image shows {p.name.split('-')[0]}"}],
             "images": [f"images/{p.name}"]} for p in images]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    return root


def batch_of(model_dir: Path, data: Path):
    model, processor = load_model(str(model_dir))
    renderer = resolve_template(None, model, processor)
    row = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    row["images"] = [str(data / p) for p in row["images"]]
    encoded = encode_image_chat(row, processor, renderer, 512, "right")
    return model, processor, ImageTextCollator(processor.tokenizer.pad_token_id)([encoded, encoded])


def sft_args(model: Path, dataset: str, out: Path, **kw) -> SftArguments:
    base = dict(model=str(model), dataset=[dataset], output_dir=str(out), tuner="lora", max_steps=20,
                learning_rate=5e-2, logging_steps=1, val_ratio=0, per_device_train_batch_size=2,
                gradient_accumulation_steps=1, save_steps=100, precision="fp32")
    return SftArguments(**{**base, **kw})


# -- the families ------------------------------------------------------------------------------------
def test_families_are_registered_and_listed(capsys):
    from swiftune.cli import main
    from swiftune.loading import family_for

    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    for name in ("qwen2-vl", "qwen2.5-vl", "llava"):
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name
        assert not registries.models.get(name).trust_remote_code
    assert family_for({"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl"}).name == "qwen2-vl"
    assert family_for({"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava"}).name == "llava"
    assert "remote code" in registries.models.get("qwen-vl").description


# -- the processor and the masks ------------------------------------------------------------------------
def test_qwen2_vl_labels_cover_the_answer_only(models, data):
    model, processor, batch = batch_of(models["qwen2-vl"], data)
    tok = processor.tokenizer
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    answer = tok("This image shows red<|im_end|>", add_special_tokens=False)["input_ids"]
    start = len(ids) - len(answer)  # the answer and its end token close the row (the tiny tokenizer drops "\n")
    assert ids[start:] == answer
    assert labels == [-100] * start + answer
    image_id = processor.image_token_id
    n_image = int(batch["image_grid_thw"][0].prod()) // 4
    assert ids.count(image_id) == n_image and n_image >= 1
    assert batch["mm_token_type_ids"][0].tolist() == [int(t == image_id) for t in ids]
    assert model(**batch).loss.isfinite()


def test_llava_image_tokens_equal_transformers_llava_processor(models, data):
    from PIL import Image
    from transformers import LlavaProcessor

    _, processor, batch = batch_of(models["llava"], data)
    reference = LlavaProcessor(image_processor=processor.image_processor, tokenizer=processor.tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    image = Image.open(next((data / "images").iterdir())).convert("RGB")
    text = "USER: <image>\nWhat colour is the square ?\nASSISTANT:"
    want = reference(text=[text], images=[image], return_tensors="pt")
    pixels, counts = processor.process_images([image])
    got = processor.tokenizer(processor.expand(text, counts), add_special_tokens=False)["input_ids"]
    assert got == want["input_ids"][0].tolist()
    assert torch.equal(pixels["pixel_values"], want["pixel_values"])
    labels = batch["labels"][0].tolist()
    ids = batch["input_ids"][0].tolist()
    assert all(label == -100 for t, label in zip(ids, labels) if t == processor.image_token_id)


# -- what trains ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_vision_tower_and_aligner_frozen_by_default_and_opt_in(models, kind):
    from swiftune.config import parse_config

    tower, aligner = {"qwen2-vl": ("model.visual.blocks", "model.visual.merger"),
                      "qwen2.5-vl": ("model.visual.blocks", "model.visual.merger"),
                      "llava": ("model.vision_tower", "model.multi_modal_projector")}[kind]
    for freeze_vit, freeze_aligner in ((True, True), (False, True), (True, False)):
        model, processor = load_model(str(models[kind]))
        config = frozen_parts_config(parse_config({"tuner": "lora", "r": 4}), processor.kind, freeze_vit, freeze_aligner)
        swift = Swift.prepare(model, config)
        trained = [n for n, p in swift.named_parameters() if p.requires_grad]
        assert trained and all(".lora_" in n for n in trained)
        assert any("language_model" in n for n in trained)
        assert any(tower in n for n in trained) is (not freeze_vit), (freeze_vit, freeze_aligner)
        assert any(aligner in n for n in trained) is (not freeze_aligner), (freeze_vit, freeze_aligner)
    full = frozen_parts_config(parse_config({"tuner": "full"}), processor.kind, True, True)
    swift = Swift.prepare(load_model(str(models[kind]))[0], full)
    trained = [n for n, p in swift.named_parameters() if p.requires_grad]
    assert trained and not any(tower in n or aligner in n for n in trained)


def test_save_load_and_merge_give_the_same_logits(models, data, tmp_path):
    model, processor, batch = batch_of(models["qwen2-vl"], data)
    from swiftune.config import parse_config

    swift = Swift.prepare(model, frozen_parts_config(parse_config({"tuner": "lora", "r": 4}), "qwen2-vl", True, True))
    with torch.no_grad():
        for name, param in swift.named_parameters():
            if ".lora_B." in name:
                param.normal_(0, 0.5)
    swift.eval()
    with torch.no_grad():
        want = swift(**batch).logits
    swift.save_pretrained(tmp_path / "adapter")
    loaded = Swift.from_pretrained(load_model(str(models["qwen2-vl"]))[0], tmp_path / "adapter").eval()
    base = load_model(str(models["qwen2-vl"]))[0].eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).logits, want, atol=1e-5)
        assert not torch.allclose(base(**batch).logits, want, atol=1e-3)  # the adapter does something
        merged = loaded.merge_and_unload()
        assert torch.allclose(merged(**batch).logits, want, atol=1e-4)


# -- sft, infer, export end to end ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_sft_infer_export(models, data, tmp_path, kind):
    from swiftune.recipes.callbacks import read_log
    from swiftune.recipes.export import run_export
    from swiftune.recipes.infer import run_infer
    from swiftune.recipes.rebuild import rebuild
    from swiftune.recipes.sft import run_sft

    result = run_sft(sft_args(models[kind], str(data / "train.jsonl"), tmp_path / "run"))
    losses = [r["loss"] for r in read_log(tmp_path / "run" / "logging.jsonl") if "loss" in r]
    assert sum(losses[-3:]) / 3 < 0.6 * losses[0], losses
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    from safetensors.torch import load_file

    keys = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert keys and all("language_model" in k for k in keys), sorted(keys)[:3]
    assert saved["exclude_modules"]

    # Batch rows with images (paths relative to the input file), and a chat with --images.
    rows = run_infer(InferArguments(adapter=[str(tmp_path / "run")], input=str(data / "train.jsonl"),
                                    output=str(tmp_path / "pred.jsonl"), max_new_tokens=4))
    assert len(rows) == 12 and all(isinstance(r["response"], str) and r["response"] for r in rows)
    assert "shows" in rows[0]["response"]  # it learned the answers' words
    from swiftune.recipes.chat import chat_loop
    from swiftune.recipes.infer import build_generator
    import io

    two = sorted(str(p) for p in (data / "images").iterdir())[:2]  # both go with the first message
    args = InferArguments(adapter=[str(tmp_path / "run")], images=two, max_new_tokens=4, stream=False)
    lines = iter(["What colour is the square ?", "/exit"])
    chat = chat_loop(build_generator(args), args, read_line=lambda _: next(lines), out=io.StringIO())
    assert chat.history[-1]["role"] == "assistant" and chat.history[-1]["content"]

    # export merges; the merged folder loads as the same vision-language model with the same logits.
    merged_dir = run_export(ExportArguments(adapter=[str(tmp_path / "run")], output=str(tmp_path / "merged")))
    assert (merged_dir / "preprocessor_config.json").is_file()
    _, processor, batch = batch_of(merged_dir, data)
    merged, _ = load_model(str(merged_dir))
    adapted = rebuild([str(tmp_path / "run")]).model
    with torch.no_grad():
        assert torch.allclose(merged.eval()(**batch).logits, adapted(**batch).logits, atol=1e-4)


def test_caption_rows_train_as_describe_the_image_chats(models, data, tmp_path):
    from swiftune.recipes.sft import run_sft

    rows = [{"image": f"images/{p.name}", "caption": f"a {p.name.split('-')[0]} square"} for p in (data / "images").iterdir()]
    (data / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_sft(sft_args(models["llava"], str(data / "captions.jsonl"), tmp_path / "run", max_steps=2))
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


# -- bad images ------------------------------------------------------------------------------------
def test_missing_and_undecodable_images_name_the_row_and_path(models, data, tmp_path):
    from swiftune.recipes.infer import run_infer
    from swiftune.recipes.sft import run_sft

    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    good = (data / "train.jsonl").read_text().splitlines()[0]
    for bad_path, why in (("nowhere/missing.png", "no such file"), ("broken.png", "cannot decode")):
        bad = json.loads(good)
        bad["images"] = [bad_path]
        file = tmp_path / "rows.jsonl"
        good_abs = json.loads(good)
        good_abs["images"] = [str(data / p) for p in good_abs["images"]]
        file.write_text(json.dumps(good_abs) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataError) as err:
            run_sft(sft_args(models["qwen2-vl"], str(file), tmp_path / "run", overwrite_output_dir=True))
        message = str(err.value)
        assert f"{file} line 2" in message and str(tmp_path / bad_path) in message and why in message, message
        with pytest.raises(DataError) as err:
            run_infer(InferArguments(model=str(models["qwen2-vl"]), input=str(file), output=str(tmp_path / "o.jsonl"),
                                     max_new_tokens=2))
        message = str(err.value)
        assert f"{file} line 2" in message and str(tmp_path / bad_path) in message and why in message, message
        written = run_infer(InferArguments(model=str(models["qwen2-vl"]), input=f"{file}#5", output=str(tmp_path / "o.jsonl"),
                                           max_new_tokens=2, skip_bad_rows=True))
        assert len(written) == 1 and written[0]["images"] == good_abs["images"]


def test_image_rows_refused_by_a_text_only_model_and_images_by_its_infer(data, tmp_path):
    from cli_fixtures import save_tiny_model

    from swiftune.errors import ConfigError
    from swiftune.recipes.infer import build_generator
    from swiftune.recipes.sft import run_sft

    text_model = save_tiny_model(tmp_path / "llama")
    with pytest.raises(ConfigError, match="not a vision-language model"):
        run_sft(sft_args(text_model, str(data / "train.jsonl"), tmp_path / "run"))
    with pytest.raises(ConfigError, match="--images"):
        build_generator(InferArguments(model=str(text_model), images=[str(next((data / "images").iterdir()))]))


def test_deploy_eval_and_rlhf_refuse_a_vision_language_model_clearly(models):
    from swiftune.errors import ConfigError
    from swiftune.recipes.adapter_choice import load_named

    with pytest.raises(ConfigError, match="deploy / eval: .* is a vision-language model"):
        load_named([], model=str(models["llava"]), template=None, precision="auto", trust_remote_code=None)


def test_rows_without_tags_get_them_in_front_and_a_count_mismatch_names_the_row(data, tmp_path):
    from swiftune.data import load_datasets

    image = sorted((data / "images").iterdir())[0]
    rows = [{"messages": [{"role": "user", "content": "What colour ?"}, {"role": "assistant", "content": "red"}],
             "images": [str(image), str(image)]},
            {"messages": [{"role": "user", "content": "<image> What colour ?"}, {"role": "assistant", "content": "red"}],
             "images": [str(image), str(image)]}]
    file = tmp_path / "rows.jsonl"
    file.write_text(json.dumps(rows[0]) + "\n")
    (example,), _ = load_datasets([str(file)], val_ratio=0)
    assert example["messages"][0]["content"] == "<image><image>What colour ?" and example["images"] == [str(image)] * 2
    file.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(DataError, match=rf"{file} line 2: 1 <image> tag\(s\) in the messages for 2 image\(s\)"):
        load_datasets([str(file)], val_ratio=0)


def test_max_pixels_caps_qwen2_vl_image_tokens_and_infer_reuses_it(models, data, tmp_path):
    from PIL import Image

    from swiftune.errors import ConfigError
    from swiftune.recipes.infer import build_generator
    from swiftune.recipes.sft import run_sft
    from swiftune.recipes.vision import limit_pixels

    image = Image.new("RGB", (56, 56), (200, 30, 30))
    _, processor = load_model(str(models["qwen2-vl"]))
    assert processor.process_images([image])[1] == [4]  # 4x4 patches, merged 2x2
    limit_pixels(processor, 28 * 28)
    pixels, counts = processor.process_images([image])
    assert counts == [1] and pixels["image_grid_thw"].tolist() == [[1, 2, 2]]
    with pytest.raises(ConfigError, match="--max_pixels: for Qwen2-VL"):
        limit_pixels(load_model(str(models["llava"]))[1], 28 * 28)

    run_sft(sft_args(models["qwen2-vl"], str(data / "train.jsonl"), tmp_path / "run", max_steps=1, max_pixels=28 * 28))
    generator = build_generator(InferArguments(adapter=[str(tmp_path / "run")]))
    assert generator.processor.max_pixels == 28 * 28
