"""Per-example attention for padding-free rows: the same logits and gradients as SDPA's block mask."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from swiftune.recipes.packed_attention import PACKED_SDPA, set_attention, use_packed_attention

LENGTHS = [5, 9, 3]


def tiny() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2)  # grouped-query attention
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


def flat_row() -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(0, 100, (n,), generator=g) for n in LENGTHS]
    return seqs, torch.cat(seqs)[None], torch.cat([torch.arange(n) for n in LENGTHS])[None]


def loss_and_grads(model, ids, pos):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, position_ids=pos, labels=ids, use_cache=False)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_flat_row_matches_the_block_mask_and_separate_examples() -> None:
    model = tiny().train()
    seqs, ids, pos = flat_row()
    want_logits, want_grads = loss_and_grads(model, ids, pos)
    assert use_packed_attention(model) and model.config._attn_implementation == PACKED_SDPA
    got_logits, got_grads = loss_and_grads(model, ids, pos)
    torch.testing.assert_close(got_logits, want_logits, rtol=0, atol=1e-5)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    with torch.no_grad():
        alone = torch.cat([model(input_ids=s[None], use_cache=False).logits[0] for s in seqs])
    torch.testing.assert_close(got_logits[0], alone, rtol=0, atol=1e-5)


def test_padded_batches_and_other_implementations_are_left_to_sdpa() -> None:
    model = tiny().eval()
    seqs, _, _ = flat_row()
    ids = torch.zeros(2, 9, dtype=torch.long)
    ids[0, :5], ids[1] = seqs[0], seqs[1]
    mask = (torch.arange(9)[None] < torch.tensor([[5], [9]])).long()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
        assert use_packed_attention(model)
        got = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, want)
    set_attention(model, "eager")
    assert not use_packed_attention(model) and model.config._attn_implementation == "eager"
