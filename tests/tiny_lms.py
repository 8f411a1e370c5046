"""Tiny models (and a padded batch for them) shared by the tuner, PEFT-compatibility and safety
tests: identical weights on every call (each seeds itself), small enough that a comparison runs in
milliseconds."""

from __future__ import annotations

import torch
import transformers
from torch import nn


def llama(hidden: int = 32, layers: int = 2, kv_heads: int = 2, tie: bool = False) -> nn.Module:
    """``tie``: lm_head shares the input embedding's weight (tie_word_embeddings)."""
    torch.manual_seed(1)
    cfg = transformers.LlamaConfig(
        vocab_size=64, hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=kv_heads, tie_word_embeddings=tie,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(cfg).eval()


def qwen2() -> nn.Module:
    torch.manual_seed(2)
    cfg = transformers.Qwen2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    return transformers.Qwen2ForCausalLM(cfg).eval()


def gpt2() -> nn.Module:
    torch.manual_seed(3)
    cfg = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0,
                                  eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg).eval()


def bert() -> nn.Module:
    torch.manual_seed(4)
    cfg = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, num_labels=3,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(cfg).eval()


class ConvNet(nn.Module):
    """Not a transformers model: Embedding -> Conv2d (3x3 and 1x1) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(64, 8)
        self.conv = nn.Conv2d(8, 6, 3, padding=1)
        self.pointwise = nn.Conv2d(6, 8, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, input_ids: torch.Tensor) -> transformers.modeling_outputs.ModelOutput:
        h = self.emb(input_ids).transpose(1, 2).unsqueeze(-1)  # (batch, 8, seq, 1)
        h = self.pointwise(torch.relu(self.conv(h)))
        return transformers.modeling_outputs.SequenceClassifierOutput(logits=self.head(h.squeeze(-1).transpose(1, 2)))


def convnet() -> nn.Module:
    torch.manual_seed(6)
    return ConvNet().eval()


def padded_pair(length: int = 7, pad: int = 2) -> dict[str, torch.Tensor]:
    """Two rows of token ids, the second left-padded by ``pad`` positions."""
    ids = torch.randint(1, 64, (2, length), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(ids)
    mask[1, :pad] = 0
    return {"input_ids": ids, "attention_mask": mask}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


LLAMA_LIKE = dict(
    vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64,
)
#: A tiny config per model_type of the model zoo (test_models checks every implemented family has one).
TINY: dict[str, dict] = {
    "llama": LLAMA_LIKE,
    "qwen2": LLAMA_LIKE,
    "qwen3": {**LLAMA_LIKE, "head_dim": 8},
    "mistral": LLAMA_LIKE,
    "gemma": {**LLAMA_LIKE, "head_dim": 8},
    "gemma2": {**LLAMA_LIKE, "head_dim": 8},
    "phi3": {**LLAMA_LIKE, "pad_token_id": 0},
    "gpt2": dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "bloom": dict(vocab_size=64, hidden_size=32, n_layer=2, n_head=4),
    "bert": dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64, num_labels=3,
    ),
    "t5": dict(
        vocab_size=64, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_decoder_layers=2, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0,
    ),
    "bart": dict(
        vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
    ),
    "vit": dict(
        image_size=16, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=3,
    ),
    "swin": dict(image_size=16, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, num_labels=3),
}
