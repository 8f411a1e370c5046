"""Tiny models for the conformance suite, each wrapped in a ``ModelCase``.

A ``ModelCase`` knows how to build its model (deterministically: two builds have bit-identical
weights, so a "fresh copy of the base" is just another ``build()``), how to make a batch, how to
read logits from the model's output and how to compute a loss. The checks in
``swiftune.testing.conformance`` only talk to models through it, so they run unchanged on
transformers LMs and on plain PyTorch modules.

Every model is in ``eval()`` mode with dropout off: comparisons are exact, not statistical.
transformers is imported only when a transformers case is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

Kind = Literal["causal_lm", "masked_lm", "classifier"]

VOCAB = 64
SEQ_LEN = 8
BATCH = 2


@dataclass
class Batch:
    """Model keyword arguments plus the targets the loss compares the logits with."""

    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor


@dataclass(frozen=True)
class ModelCase:
    """One tiny model and how to feed it. Cheap to create: nothing is built until ``build()``."""

    name: str
    factory: Callable[[], nn.Module] = field(repr=False)
    kind: Kind
    #: A transformers ``PreTrainedModel`` (config, embeddings, cache, ``generate``).
    is_transformers: bool
    #: For plain modules: the shape of one input example; its classes in ``num_classes``.
    input_shape: tuple[int, ...] = ()
    num_classes: int = 4
    batch_size: int = BATCH
    seq_len: int = SEQ_LEN
    vocab_size: int = VOCAB
    seed: int = 0

    @property
    def is_causal_lm(self) -> bool:
        return self.kind == "causal_lm"

    @property
    def is_sequence_model(self) -> bool:
        return self.kind in ("causal_lm", "masked_lm")

    def build(self) -> nn.Module:
        """A new model; every call returns the same weights (seeded, without touching global RNG)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.factory()
        return model.eval()

    def batch(self, seed: int = 0) -> Batch:
        """A fixed batch: the same ``seed`` always gives the same tensors."""
        gen = torch.Generator().manual_seed(1000 + seed)
        if self.is_sequence_model:
            # Token 0 is the pad token; keep it out so no position is special.
            ids = torch.randint(1, self.vocab_size, (self.batch_size, self.seq_len), generator=gen)
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if self.kind == "causal_lm":
                return Batch(inputs, ids[:, 1:])
            targets = torch.randint(1, self.vocab_size, (self.batch_size, self.seq_len), generator=gen)
            return Batch(inputs, targets)
        x = torch.randn((self.batch_size, *self.input_shape), generator=gen)
        return Batch({"x": x}, torch.randint(0, self.num_classes, (self.batch_size,), generator=gen))

    def logits(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the real inputs: positions added by prompt-learning tuners are cut off."""
        out = model(**inputs)
        logits = out if isinstance(out, torch.Tensor) else out.logits
        if self.is_sequence_model:
            logits = logits[:, -inputs["input_ids"].shape[1] :]
        return logits

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Cross-entropy computed here from the logits, so every tuner is scored the same way."""
        logits = self.logits(model, batch.inputs)
        if self.kind == "causal_lm":
            logits = logits[:, :-1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch.targets.reshape(-1))


# -- plain PyTorch models ------------------------------------------------------------------------------
class TinyMLP(nn.Module):
    """Two hidden Linear layers and a classifier head."""

    def __init__(self, in_features: int = 16, hidden: int = 32, num_classes: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.fc2(F.relu(self.fc1(x)))))


class TinyConvNet(nn.Module):
    """Conv2d feature extractor, a hidden Linear layer and a Linear head, on 3x8x8 images."""

    def __init__(self, channels: int = 8, hidden: int = 64, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fc1 = nn.Linear(channels * 4 * 4, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        h = F.avg_pool2d(h, 2).flatten(1)
        return self.head(F.relu(self.fc1(h)))


def tiny_mlp() -> ModelCase:
    return ModelCase("mlp", TinyMLP, "classifier", is_transformers=False, input_shape=(16,), batch_size=16)


def tiny_conv() -> ModelCase:
    return ModelCase("conv", TinyConvNet, "classifier", is_transformers=False, input_shape=(3, 8, 8), batch_size=8)


# -- transformers models (built from configs, never downloaded) -------------------------------------------
_TOKENS: dict[str, Any] = {"vocab_size": VOCAB, "initializer_range": 0.2, "pad_token_id": 0, "bos_token_id": None, "eos_token_id": None}


def _llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, **_TOKENS,
        )
    )  # fmt: skip


def _qwen2() -> nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(
        Qwen2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, **_TOKENS,
        )
    )  # fmt: skip


def _gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(
        GPT2Config(
            n_embd=32, n_layer=2, n_head=4, n_positions=64,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **_TOKENS,
        )
    )  # fmt: skip


def _bert() -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    return BertForMaskedLM(
        BertConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **_TOKENS,
        )
    )  # fmt: skip


def tiny_llama() -> ModelCase:
    return ModelCase("llama", _llama, "causal_lm", is_transformers=True)


def tiny_qwen2() -> ModelCase:
    return ModelCase("qwen2", _qwen2, "causal_lm", is_transformers=True)


def tiny_gpt2() -> ModelCase:
    return ModelCase("gpt2", _gpt2, "causal_lm", is_transformers=True)


def tiny_bert() -> ModelCase:
    return ModelCase("bert", _bert, "masked_lm", is_transformers=True)


#: Every built-in case by name, in the order the suite runs them.
MODEL_CASES: dict[str, Callable[[], ModelCase]] = {
    "llama": tiny_llama,
    "qwen2": tiny_qwen2,
    "gpt2": tiny_gpt2,
    "bert": tiny_bert,
    "mlp": tiny_mlp,
    "conv": tiny_conv,
}


def model_case(name: str) -> ModelCase:
    """The built-in case called ``name`` (one of ``MODEL_CASES``)."""
    if name not in MODEL_CASES:
        raise KeyError(f"unknown model case '{name}'; known: {', '.join(MODEL_CASES)}")
    return MODEL_CASES[name]()
