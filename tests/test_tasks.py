"""Tasks beyond causal LM through the Python API: conditional generation (T5, BART), sequence and
token classification (BERT) and image classification (ViT on synthetic images).

Each case saves a tiny base checkpoint, loads it with ``load_model`` for its task, gets the
tuner's adapter on the family's default targets, trains a few steps on a fixed batch (the loss
must fall), saves the adapter and loads it onto a freshly loaded base: the logits must be equal.
Another tuner is one more entry in ``TUNERS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import transformers

from swiftune import ModelFamily, Swift
from swiftune.loading import family_for, load_model
from swiftune.testing.tokenizers import tiny_tokenizer

VOCAB = len(tiny_tokenizer().get_vocab())
#: ``initializer_range=0.2``: the random head then gives logits of a trained model's scale, so a tuner
#: that leaves the head frozen (``adapter`` has no ``modules_to_save``) can still move the loss.
ENCODER = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               max_position_embeddings=64, initializer_range=0.2)


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    build: Callable[[], transformers.PreTrainedModel]
    batch: Callable[[], dict[str, torch.Tensor]]
    #: The task's new head, trained in full by the tuners that can (``modules_to_save``).
    head: str | None = None
    image: bool = False


def _ids(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randint(5, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def _images() -> dict[str, torch.Tensor]:
    """Synthetic 16x16 images whose class is where a bright square sits (top, middle or bottom)."""
    gen = torch.Generator().manual_seed(7)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pixels = 0.1 * torch.randn(len(labels), 3, 16, 16, generator=gen)
    for i, label in enumerate(labels.tolist()):
        pixels[i, :, 5 * label : 5 * label + 5, 4:12] += 1.0
    return {"pixel_values": pixels, "labels": labels}


CASES = [
    Case(
        "t5",
        "seq2seq-lm",
        lambda: transformers.T5ForConditionalGeneration(transformers.T5Config(
            vocab_size=VOCAB, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, decoder_start_token_id=0,
            pad_token_id=0)),
        lambda: {"input_ids": _ids((4, 8), 1), "labels": _ids((4, 6), 2)},
    ),
    Case(
        "bart",
        "seq2seq-lm",
        lambda: transformers.BartForConditionalGeneration(transformers.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
            pad_token_id=0, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2,
            init_std=0.2)),  # BART's default 0.02 gives near-zero logits: too little to learn in 8 steps
        lambda: {"input_ids": _ids((4, 8), 1), "labels": _ids((4, 6), 2)},
    ),
    Case(
        "bert-sequence",
        "sequence-classification",
        lambda: transformers.BertForSequenceClassification(transformers.BertConfig(**ENCODER, num_labels=3)),
        lambda: {"input_ids": _ids((6, 8), 1), "labels": torch.tensor([0, 1, 2, 0, 1, 2])},
        head="classifier",
    ),
    Case(
        "bert-token",
        "token-classification",
        lambda: transformers.BertForTokenClassification(transformers.BertConfig(**ENCODER, num_labels=5)),
        lambda: {"input_ids": _ids((4, 8), 1), "labels": torch.randint(0, 5, (4, 8), generator=torch.Generator().manual_seed(2))},
        head="classifier",
    ),
    Case(
        "vit",
        "image-classification",
        lambda: transformers.ViTForImageClassification(transformers.ViTConfig(
            image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, num_labels=3, initializer_range=0.2)),
        _images,
        head="classifier",
        image=True,
    ),
]


def lora(family: ModelFamily, case: Case) -> dict[str, Any]:
    cfg = {"tuner": "lora", "r": 4, "lora_alpha": 8, "target_modules": family.default_target_modules}
    return {**cfg, "modules_to_save": [case.head]} if case.head else cfg


def adapter(family: ModelFamily, case: Case) -> dict[str, Any]:
    return {"tuner": "adapter", "adapter_dim": 8}  # its defaults: attention and MLP output projections


#: Tuner name -> its config for a case. One line per tuner.
TUNERS: dict[str, Callable[[ModelFamily, Case], dict[str, Any]]] = {"lora": lora, "adapter": adapter}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Each case's base checkpoint, saved once with its tokenizer or image processor."""
    folders = {}
    for case in CASES:
        folder = tmp_path_factory.mktemp(case.name)
        torch.manual_seed(0)
        case.build().save_pretrained(folder)
        if case.image:
            transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
        else:
            tiny_tokenizer().save_pretrained(folder)
        folders[case.name] = folder
    return folders


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("tuner", list(TUNERS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_task_trains_and_round_trips(case: Case, tuner: str, bases, tmp_path):
    model, _ = load_model(bases[case.name], task=case.task)
    model.eval()  # dropout off: the loss is a function of the weights only
    family = family_for(model)
    assert family.task == case.task or case.name == "bert-token"
    swift = Swift.prepare(model, TUNERS[tuner](family, case))
    trainable = [p for p in swift.parameters() if p.requires_grad]
    assert trainable
    batch = case.batch()
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = swift(**batch).loss
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert losses[-1] < 0.9 * losses[0], losses

    # Only the tuner's parameters moved: a fresh base gives the untouched model back.
    fresh, _ = load_model(bases[case.name], task=case.task)
    fresh.eval()
    with swift.disable_adapters():
        torch.testing.assert_close(logits(swift, batch), logits(fresh, batch))

    swift.save_pretrained(tmp_path / "adapter")
    reloaded = Swift.from_pretrained(fresh, tmp_path / "adapter")
    reloaded.eval()
    expected = logits(swift, batch)
    torch.testing.assert_close(logits(reloaded, batch), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(expected, logits(load_model(bases[case.name], task=case.task)[0].eval(), batch))
