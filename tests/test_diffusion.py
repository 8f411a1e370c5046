"""Text-to-image: LoRA on a tiny random Stable Diffusion pipeline (built in the test, no download).

sft trains it (the loss on fixed noise falls, only LoRA weights exist in the adapter, the base is
untouched), diffusers' own ``load_lora_weights`` reads the saved folder and gives the same UNet and
text-encoder outputs as swiftune's adapter, a LoRA saved by diffusers loads here with equal outputs,
and ``swiftune infer --task text-to-image`` writes a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from swiftune import Swift, cli  # noqa: E402
from swiftune.data.errors import DataError  # noqa: E402
from swiftune.recipes.arguments import SftArguments  # noqa: E402
from swiftune.recipes.diffusers_lora import WEIGHT_NAME  # noqa: E402
from swiftune.recipes.diffusion import CaptionImages, adapter_onto  # noqa: E402
from swiftune.recipes.diffusion_model import denoiser_of, load_pipeline  # noqa: E402
from swiftune.recipes.sft import run_sft  # noqa: E402
from swiftune.testing.diffusion import tiny_sd_pipeline, write_caption_images  # noqa: E402


@pytest.fixture(scope="module")
def sd(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sd") / "pipe"
    tiny_sd_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_caption_images(tmp_path_factory.mktemp("captions"), n=8)


@pytest.fixture(scope="module")
def run(sd, data, tmp_path_factory) -> Path:
    """One sft run: LoRA on the UNet and the text encoder, 30 steps."""
    out = tmp_path_factory.mktemp("runs") / "t2i"
    run_sft(SftArguments(task="text-to-image", model=str(sd), dataset=[str(data)], output_dir=str(out), tuner="lora",
                         tuner_args={"r": 4, "lora_alpha": 8}, train_text_encoder=True, max_steps=30,
                         per_device_train_batch_size=8, gradient_accumulation_steps=1, learning_rate=2e-2,
                         warmup_steps=0, logging_steps=5, save_steps=15))
    return out


def fixed_loss(denoiser, batch, seeds=range(4)) -> float:
    """The training loss at fixed noise and timesteps (averaged over a few seeds)."""
    losses = []
    with torch.no_grad():
        for seed in seeds:
            torch.manual_seed(seed)
            losses.append(denoiser(**batch)["loss"].item())
    return sum(losses) / len(losses)


def caption_batch(sd, data) -> dict[str, torch.Tensor]:
    from swiftune.data.images import load_image_datasets

    pipe = load_pipeline(str(sd))
    rows = load_image_datasets([str(data)], "image_caption").train
    items = [CaptionImages(rows, pipe.tokenizer, 16, True, False)[i] for i in range(len(rows))]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def unet_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(2, 4, 8, 8, generator=gen), torch.tensor([10, 60]), torch.randn(2, 16, 16, generator=gen)


def train_text_encoder_too_and_load_both(model: Path, data: Path, run: Path, pipeline_class: type) -> tuple:
    """Train LoRA on the denoiser and the text encoders (4 steps); return diffusers' pipeline with the
    saved adapter loaded by ``load_lora_weights`` and ours with it loaded by ``Swift.from_pretrained``."""
    run_sft(SftArguments(task="text-to-image", model=str(model), dataset=[str(data)], output_dir=str(run),
                         tuner="lora", train_text_encoder=True, max_steps=4, per_device_train_batch_size=4,
                         gradient_accumulation_steps=1, learning_rate=2e-2, save_steps=4))
    theirs = pipeline_class.from_pretrained(str(model), use_safetensors=True)
    theirs.load_lora_weights(str(run / "final"))
    ours = load_pipeline(str(model))
    Swift.from_pretrained(denoiser_of(ours), run / "final")
    return theirs, ours


def test_training_lowers_the_loss_and_trains_only_lora(sd, data, run):
    batch = caption_batch(sd, data)
    base = denoiser_of(load_pipeline(str(sd)))
    before = fixed_loss(base, batch)
    tuned = Swift.from_pretrained(denoiser_of(load_pipeline(str(sd))), run / "final")
    tuned.eval()
    after = fixed_loss(tuned, batch)
    assert after < 0.95 * before, (before, after)  # noise prediction has a high floor: 5% at fixed noise is learning
    with tuned.disable_adapters():  # the frozen pipeline is the base, exactly
        assert fixed_loss(tuned, batch) == pytest.approx(before, abs=1e-6)

    final = run / "final"
    assert {"adapter_model.safetensors", "adapter_config.json", WEIGHT_NAME, "args.json"} <= {p.name for p in final.iterdir()}
    from safetensors.torch import load_file

    keys = list(load_file(final / "adapter_model.safetensors"))
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert any(k.startswith("base_model.model.unet.") for k in keys)
    assert any(k.startswith("base_model.model.text_encoder.") for k in keys)
    assert not any(".vae." in k for k in keys)
    log = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log) and (run / "loss.png").is_file() and (run / "checkpoint-30").is_dir()
    assert json.loads((run / "args.json").read_text())["task"] == "text-to-image"


def test_diffusers_loads_the_saved_lora_with_the_same_outputs(sd, run):
    from diffusers import StableDiffusionPipeline

    ours = load_pipeline(str(sd))
    Swift.from_pretrained(denoiser_of(ours), run / "final").eval()
    theirs = StableDiffusionPipeline.from_pretrained(str(sd), use_safetensors=True)
    theirs.load_lora_weights(str(run / "final"))
    plain = StableDiffusionPipeline.from_pretrained(str(sd), use_safetensors=True)
    latents, t, hidden = unet_inputs()
    ids = torch.tensor([ours.tokenizer("a red square", padding="max_length", max_length=16).input_ids])
    with torch.no_grad():
        expected = ours.unet(latents, t, hidden).sample
        torch.testing.assert_close(theirs.unet(latents, t, hidden).sample, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain.unet(latents, t, hidden).sample, expected, atol=1e-4)
        torch.testing.assert_close(theirs.text_encoder(ids)[0], ours.text_encoder(ids)[0], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain.text_encoder(ids)[0], ours.text_encoder(ids)[0], atol=1e-4)
    metadata = json.loads(__import__("safetensors").safe_open(str(run / "final" / WEIGHT_NAME), "pt").metadata()["lora_adapter_metadata"])
    assert metadata["unet.r"] == 4 and metadata["unet.lora_alpha"] == 8


def test_a_diffusers_saved_lora_loads_here(sd, tmp_path):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    theirs = StableDiffusionPipeline.from_pretrained(str(sd), use_safetensors=True)
    config = LoraConfig(r=2, lora_alpha=6, init_lora_weights=False, target_modules=["to_q", "to_v", "to_out.0"])
    theirs.unet.add_adapter(config)
    StableDiffusionPipeline.save_lora_weights(tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(theirs.unet),
                                              unet_lora_adapter_metadata=config.to_dict())
    ours = load_pipeline(str(sd))
    swift, _ = adapter_onto(denoiser_of(ours), str(tmp_path / "lora"), tmp_path / "converted")
    assert swift.tuners["default"].config.lora_alpha == 6 and swift.tuners["default"].config.r == 2
    latents, t, hidden = unet_inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours.unet(latents, t, hidden).sample, theirs.unet(latents, t, hidden).sample,
                                   rtol=1e-5, atol=1e-6)


def test_infer_writes_an_image(sd, run, tmp_path):
    from PIL import Image

    out = tmp_path / "out" / "img.png"
    assert cli.main(["infer", "--task", "text-to-image", "--adapter", str(run), "--prompt", "a red square",
                     "--output", str(out), "--num-inference-steps", "3"]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (16, 16)


def test_bad_image_rows_name_file_line_and_path(data, tmp_path):
    from swiftune.data.images import load_image_datasets

    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [{"image": str(data.parent / "images" / "0.png"), "text": "ok"}, {"image": "missing.png", "text": "x"},
            {"image": "broken.png", "text": "y"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"rows.jsonl line 2: image 'missing.png' \(.*missing.png\): no such file"):
        load_image_datasets([str(path)], "image_caption")
    loaded = load_image_datasets([str(path)], "image_caption", skip_bad_rows=True)
    assert len(loaded.train) == 1 and len(loaded.skipped) == 2
    assert "rows.jsonl line 3: image 'broken.png'" in loaded.skipped[1] and "cannot decode" in loaded.skipped[1]


#: Tuners besides LoRA that apply to a plain UNet: each trains only inside the UNet and reloads equal.
OTHER_TUNERS = {
    "dora": {"tuner": "lora", "use_dora": True, "r": 2},
    "adapter": {"tuner": "adapter"},
    "bitfit": {"tuner": "bitfit"},
    "part": {"tuner": "part", "target_parameters": r"unet\..*to_q.*"},
    "peft-loha": {"tuner": "peft", "peft_config": {"peft_type": "LOHA", "r": 2, "target_modules": ["to_q", "to_v"]}},
}


@pytest.mark.parametrize("name", list(OTHER_TUNERS))
def test_other_tuners_on_the_unet(sd, data, name, tmp_path):
    from swiftune import registries
    from swiftune.config import parse_config
    from swiftune.recipes.diffusion import prepare_denoiser
    from swiftune.recipes.diffusion_model import diffusion_tuner_args

    settings = dict(OTHER_TUNERS[name])
    tuner = settings.pop("tuner")
    fields = set(registries.tuners.get(tuner).config_class.model_fields)
    config = parse_config({**diffusion_tuner_args(settings, False, fields), "tuner": tuner})
    swift = prepare_denoiser(denoiser_of(load_pipeline(str(sd))), config,
                             SftArguments(task="text-to-image", model=str(sd), dataset=[str(data)], tuner=tuner))
    trained = [n for n, p in swift.model.named_parameters() if p.requires_grad]
    assert trained and all(n.startswith("unet.") for n in trained)
    batch = {k: v[:2] for k, v in caption_batch(sd, data).items()}
    torch.manual_seed(0)
    swift(**batch)["loss"].backward()
    with torch.no_grad():
        for p in swift.parameters():
            if p.grad is not None:
                p.add_(torch.randn_like(p) * 0.05)  # a step's worth of change, so the reload is checked on it
    swift.save_pretrained(tmp_path / "adapter")
    again = Swift.from_pretrained(denoiser_of(load_pipeline(str(sd))), tmp_path / "adapter")
    assert fixed_loss(again, batch, seeds=[1]) == pytest.approx(fixed_loss(swift, batch, seeds=[1]), abs=1e-6)
    assert fixed_loss(swift, batch, seeds=[1]) != pytest.approx(fixed_loss(denoiser_of(load_pipeline(str(sd))), batch, seeds=[1]), abs=1e-6)


def test_a_prompt_tuner_is_refused_with_the_list(sd, data):
    from swiftune.config import parse_config
    from swiftune.errors import ConfigError
    from swiftune.recipes.diffusion import prepare_denoiser

    with pytest.raises(ConfigError, match="--tuner prompt: it needs a transformers model.*lora"):
        prepare_denoiser(denoiser_of(load_pipeline(str(sd))), parse_config({"tuner": "prompt"}),
                         SftArguments(task="text-to-image", model=str(sd), dataset=[str(data)], tuner="prompt"))


def test_v_prediction_trains_towards_the_velocity(tmp_path):
    import torch.nn.functional as F

    pipe = tiny_sd_pipeline(tmp_path / "v", prediction_type="v_prediction")
    denoiser = denoiser_of(pipe)
    assert denoiser.prediction_type == "v_prediction"
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    ids = torch.tensor(pipe.tokenizer(["a red square"] * 2, padding="max_length", max_length=16).input_ids)
    with torch.no_grad():
        torch.manual_seed(5)
        loss = denoiser(pixel_values=pixels, input_ids=ids)["loss"]
        torch.manual_seed(5)  # the same draws, in forward's order: latent sample, noise, timesteps
        latents = pipe.vae.encode(pixels).latent_dist.sample() * pipe.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (2,)).long()
        prediction = pipe.unet(pipe.scheduler.add_noise(latents, noise, t), t, pipe.text_encoder(ids)[0]).sample
        velocity = pipe.scheduler.get_velocity(latents, noise, t)
    torch.testing.assert_close(loss, F.mse_loss(prediction, velocity))
    assert not torch.allclose(loss, F.mse_loss(prediction, noise))


def test_resume_continues_and_a_finished_folder_is_kept(sd, data, tmp_path):
    from swiftune.errors import ConfigError

    common = dict(task="text-to-image", model=str(sd), dataset=[str(data)], output_dir=str(tmp_path / "run"),
                  tuner="lora", per_device_train_batch_size=4, gradient_accumulation_steps=1, save_steps=2,
                  logging_steps=1)
    assert run_sft(SftArguments(**common, max_steps=2)).global_step == 2
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        run_sft(SftArguments(**common, max_steps=4))
    assert run_sft(SftArguments(**common, max_steps=4, resume=True)).global_step == 4
    log = [json.loads(line) for line in (tmp_path / "run" / "logging.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in log if "loss" in r}) == [1, 2, 3, 4]
    assert (tmp_path / "run" / "checkpoint-4" / WEIGHT_NAME).is_file()


def test_a_peft_unet_adapter_loads_onto_the_unet(sd, tmp_path):
    from peft import LoraConfig, get_peft_model

    theirs = get_peft_model(load_pipeline(str(sd)).unet, LoraConfig(r=2, lora_alpha=4, init_lora_weights=False,
                                                                   target_modules=["to_k", "to_out.0"]))
    theirs.save_pretrained(tmp_path / "peft")
    ours = Swift.from_pretrained(load_pipeline(str(sd)).unet, tmp_path / "peft")
    latents, t, hidden = unet_inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(latents, t, hidden).sample, theirs(latents, t, hidden).sample, rtol=0, atol=1e-6)


def test_infer_with_merge_draws_the_same_image(sd, run, tmp_path):
    import numpy as np
    from PIL import Image

    common = ["infer", "--task", "text-to-image", "--adapter", str(run), "--prompt", "a blue square",
              "--num-inference-steps", "3", "--guidance-scale", "1"]
    assert cli.main([*common, "--output", str(tmp_path / "a.png")]) == 0
    assert cli.main([*common, "--merge", "--output", str(tmp_path / "b.png")]) == 0
    assert cli.main(["infer", "--task", "text-to-image", "--model", str(sd), "--prompt", "a blue square",
                     "--num-inference-steps", "3", "--guidance-scale", "1", "--output", str(tmp_path / "c.png")]) == 0
    a, b, c = (np.asarray(Image.open(tmp_path / f"{n}.png"), dtype=np.int16) for n in "abc")
    assert np.abs(a - b).max() <= 1  # merging rounds differently, by one level at most
    assert np.abs(a - c).max() > 1  # the adapter changes the picture


def test_sdxl_lora_trains_and_loads_in_diffusers(data, tmp_path):
    """SDXL: two text encoders (LoRA on both with --train-text-encoder) and size / crop conditioning."""
    from diffusers import StableDiffusionXLPipeline

    from swiftune.testing.diffusion import tiny_sdxl_pipeline

    tiny_sdxl_pipeline(tmp_path / "sdxl")
    theirs, ours = train_text_encoder_too_and_load_both(tmp_path / "sdxl", data, tmp_path / "run",
                                                        StableDiffusionXLPipeline)
    plain = StableDiffusionXLPipeline.from_pretrained(str(tmp_path / "sdxl"), use_safetensors=True)
    gen = torch.Generator().manual_seed(0)
    latents, hidden, pooled = (torch.randn(*s, generator=gen) for s in ((1, 4, 8, 8), (1, 16, 32), (1, 16)))
    added = {"text_embeds": pooled, "time_ids": torch.tensor([[16.0, 16, 0, 0, 16, 16]])}
    ids = torch.tensor([ours.tokenizer("a red square", padding="max_length", max_length=16).input_ids])
    with torch.no_grad():
        expected = ours.unet(latents, 10, hidden, added_cond_kwargs=added).sample
        torch.testing.assert_close(theirs.unet(latents, 10, hidden, added_cond_kwargs=added).sample, expected,
                                   rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain.unet(latents, 10, hidden, added_cond_kwargs=added).sample, expected, atol=1e-4)
        torch.testing.assert_close(theirs.text_encoder_2(ids)[0], ours.text_encoder_2(ids)[0], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain.text_encoder_2(ids)[0], ours.text_encoder_2(ids)[0], atol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients(sd, data):
    from swiftune.config import parse_config

    batch = {k: v[:2] for k, v in caption_batch(sd, data).items()}
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(1)  # the same random LoRA weights both times
        swift = Swift.prepare(denoiser_of(load_pipeline(str(sd))), parse_config(
            {"tuner": "lora", "init_lora_weights": False, "target_modules": r"(unet|text_encoder)\..*(to_q|q_proj)"}))
        swift.train()
        if checkpointing:
            swift.activation_checkpointing_enable()
            assert swift.is_activation_checkpointing
        torch.manual_seed(0)
        swift(**batch)["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in swift.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and any("text_encoder" in n for n in grads[0])
    for name, grad in grads[0].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6)


def test_sd3_flow_matching_lora_loads_in_diffusers(data, tmp_path):
    """SD3: a diffusion transformer trained by flow matching; LoRA keys under ``transformer.``."""
    import torch.nn.functional as F
    from diffusers import StableDiffusion3Pipeline

    from swiftune.testing.diffusion import tiny_sd3_pipeline

    tiny_sd3_pipeline(tmp_path / "sd3")
    # The loss is rectified flow matching: predict noise - latents at (1 - sigma) latents + sigma noise.
    pipe = load_pipeline(str(tmp_path / "sd3"))
    loss_module = denoiser_of(pipe)
    ids = torch.tensor(pipe.tokenizer(["a red square"], padding="max_length", max_length=16).input_ids)
    ids3 = torch.tensor(pipe.tokenizer_3(["a red square"], padding="max_length", max_length=256).input_ids)
    pixels = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.manual_seed(2)
        loss = loss_module(pixel_values=pixels, input_ids=ids, input_ids_2=ids, input_ids_3=ids3)["loss"]
        torch.manual_seed(2)
        latents = pipe.vae.encode(pixels).latent_dist.sample()
        latents = (latents - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        index = (torch.sigmoid(torch.randn(1)) * 100).long()
        sigma = loss_module.noise_scheduler.sigmas[index].view(-1, 1, 1, 1)
        prompt, _, pooled, _ = pipe.encode_prompt("a red square", "a red square", "a red square",
                                                  do_classifier_free_guidance=False)
        prediction = pipe.transformer(hidden_states=(1 - sigma) * latents + sigma * noise,
                                      timestep=loss_module.noise_scheduler.timesteps[index], encoder_hidden_states=prompt,
                                      pooled_projections=pooled).sample
    torch.testing.assert_close(loss, F.mse_loss(prediction, noise - latents))

    run = tmp_path / "run"
    theirs, ours = train_text_encoder_too_and_load_both(tmp_path / "sd3", data, run, StableDiffusion3Pipeline)
    gen = torch.Generator().manual_seed(0)
    inputs = dict(hidden_states=torch.randn(1, 4, 8, 8, generator=gen), timestep=torch.tensor([500.0]),
                  encoder_hidden_states=torch.randn(1, 20, 32, generator=gen), pooled_projections=torch.randn(1, 32, generator=gen))
    with torch.no_grad():
        expected = ours.transformer(**inputs).sample
        torch.testing.assert_close(theirs.transformer(**inputs).sample, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(pipe.transformer(**inputs).sample, expected, atol=1e-4)
        torch.testing.assert_close(theirs.text_encoder(ids)[0], ours.text_encoder(ids)[0], rtol=1e-5, atol=1e-6)
    out = tmp_path / "sd3.png"
    assert cli.main(["infer", "--task", "text-to-image", "--adapter", str(run), "--prompt", "a red square",
                     "--output", str(out), "--num-inference-steps", "2"]) == 0 and out.stat().st_size > 0


def test_export_and_chat_infer_point_at_text_to_image(run, tmp_path, capsys):
    assert cli.main(["export", "--adapter", str(run), "--output", str(tmp_path / "merged")]) == 2
    assert "trained with --task text-to-image" in capsys.readouterr().err
    assert not (tmp_path / "merged").exists()


def test_a_diffusers_lora_with_per_module_alphas_is_refused(sd, tmp_path):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from swiftune.errors import ConfigError

    theirs = StableDiffusionPipeline.from_pretrained(str(sd), use_safetensors=True)
    config = LoraConfig(r=2, lora_alpha=4, alpha_pattern={"to_q": 8}, target_modules=["to_q", "to_v"])
    theirs.unet.add_adapter(config)
    StableDiffusionPipeline.save_lora_weights(tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(theirs.unet),
                                              unet_lora_adapter_metadata=config.to_dict())
    with pytest.raises(ConfigError, match="sets alpha_pattern"):
        adapter_onto(denoiser_of(load_pipeline(str(sd))), str(tmp_path / "lora"), tmp_path / "converted")


def test_a_dora_adapter_round_trips_through_diffusers_files(sd, tmp_path):
    from diffusers import StableDiffusionPipeline

    from swiftune.config import parse_config
    from swiftune.recipes.diffusers_lora import write_diffusers_lora_of
    from swiftune.recipes.diffusion_model import diffusion_tuner_args

    ours = load_pipeline(str(sd))
    torch.manual_seed(0)
    config = {**diffusion_tuner_args({"use_dora": True, "r": 2, "init_lora_weights": False}, False, {"target_modules"}),
              "tuner": "lora"}
    swift = Swift.prepare(denoiser_of(ours), parse_config(config))
    with torch.no_grad():
        for name, param in swift.named_parameters():
            if "magnitude" in name:
                param.mul_(1.1)  # a trained magnitude, not the weight norm it starts at
    swift.save_pretrained(tmp_path / "dora")
    assert write_diffusers_lora_of(tmp_path / "dora") is not None
    theirs = StableDiffusionPipeline.from_pretrained(str(sd), use_safetensors=True)
    theirs.load_lora_weights(str(tmp_path / "dora"))
    back = load_pipeline(str(sd))
    adapter_onto(denoiser_of(back), str(tmp_path / "dora" / WEIGHT_NAME), tmp_path / "converted")
    latents, t, hidden = unet_inputs()
    with torch.no_grad():
        expected = ours.unet(latents, t, hidden).sample
        torch.testing.assert_close(theirs.unet(latents, t, hidden).sample, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(back.unet(latents, t, hidden).sample, expected, rtol=1e-4, atol=1e-5)
