"""``swiftune.linear_cross_entropy``: the LM head and its loss in row chunks give the loss and the
hidden-state gradients of ``cross_entropy(F.linear(h, W).float(), labels)``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from swiftune import linear_cross_entropy
from swiftune.fused_loss import chunk_rows

VOCAB, HIDDEN = 97, 16


def case(tokens: int = 23, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, HIDDEN, generator=g)
    weight = torch.randn(VOCAB, HIDDEN, generator=g) * 0.5
    labels = torch.randint(VOCAB, (tokens,), generator=g)
    labels[::4] = -100
    return hidden, weight, labels


def plain(hidden, weight, labels, autocast: bool = False, items=None) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = F.linear(hidden, weight)
    reduction = "mean" if items is None else "sum"
    loss = F.cross_entropy(logits.float(), labels, ignore_index=-100, reduction=reduction)
    return loss if items is None else loss / items


def loss_and_grad(fn, hidden, *args, **kwargs):
    h = hidden.clone().requires_grad_()
    loss = fn(h, *args, **kwargs)
    loss.backward()
    return loss.detach(), h.grad


@pytest.mark.parametrize("rows", [1, 5, 23, 64], ids=["one-row", "ragged", "exact", "one-chunk"])
@pytest.mark.parametrize("items", [None, 40], ids=["mean", "num_items_in_batch"])
def test_fp32_loss_and_gradients_match_the_plain_head(rows, items) -> None:
    hidden, weight, labels = case()
    got = loss_and_grad(linear_cross_entropy, hidden, weight, labels, num_items_in_batch=items, rows=rows)
    expected = loss_and_grad(plain, hidden, weight, labels, items=items)
    assert got[0].item() == pytest.approx(expected[0].item(), rel=1e-6)
    assert (got[1] - expected[1]).abs().max().item() <= 1e-6 * expected[1].abs().max().item() + 1e-9


def test_rows_with_ignored_labels_get_no_gradient() -> None:
    hidden, weight, labels = case()
    _, grad = loss_and_grad(linear_cross_entropy, hidden, weight, labels, rows=5)
    assert torch.count_nonzero(grad[::4]) == 0
    assert torch.count_nonzero(grad[1::4]) > 0


def test_bf16_autocast_matches_the_autocast_head() -> None:
    hidden, weight, labels = case(tokens=40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_and_grad(linear_cross_entropy, hidden, weight, labels, rows=7)
    expected = loss_and_grad(plain, hidden, weight, labels, autocast=True)
    assert got[1].dtype == torch.float32  # the gradient comes back in the hidden states' dtype
    assert got[0].item() == pytest.approx(expected[0].item(), rel=1e-5)
    # One bf16 rounding of the gradient before the GEMM, like autocast's: within a bf16 step.
    assert (got[1] - expected[1]).abs().max().item() <= 8e-3 * expected[1].abs().max().item()
    fp32 = loss_and_grad(plain, hidden, weight, labels)
    assert (fp32[1] - expected[1]).abs().max().item() > 0  # bf16 really ran (the comparison can fail)


def test_a_bf16_weight_copy_gives_the_same_result_as_casting_inside() -> None:
    hidden, weight, labels = case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = loss_and_grad(linear_cross_entropy, hidden, weight, labels)
        b = loss_and_grad(linear_cross_entropy, hidden, weight.to(torch.bfloat16), labels)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_the_backward_scales_with_the_outer_gradient_and_no_grad_gives_the_loss() -> None:
    hidden, weight, labels = case()
    once = loss_and_grad(linear_cross_entropy, hidden, weight, labels)
    thrice = loss_and_grad(lambda h, *a: 3 * linear_cross_entropy(h, *a), hidden, weight, labels)
    assert torch.allclose(thrice[1], 3 * once[1], rtol=1e-6, atol=1e-9)
    with torch.no_grad():
        assert linear_cross_entropy(hidden, weight, labels).item() == pytest.approx(once[0].item(), rel=1e-6)


def test_batched_hidden_states_and_mismatched_labels() -> None:
    hidden, weight, labels = case(tokens=24)
    batched = linear_cross_entropy(hidden.view(4, 6, HIDDEN), weight, labels.view(4, 6))
    assert batched.item() == pytest.approx(plain(hidden, weight, labels).item(), rel=1e-6)
    with pytest.raises(ValueError, match="do not match labels"):
        linear_cross_entropy(hidden.view(4, 6, HIDDEN), weight, labels)


def test_chunks_stay_cache_sized_for_any_vocabulary() -> None:
    assert chunk_rows(49152, torch.bfloat16) == 128 and chunk_rows(49152, torch.float32) == 256
    assert chunk_rows(152064, torch.bfloat16) == 41 and chunk_rows(10**7, torch.float32) == 16
    assert chunk_rows(49152, torch.bfloat16, "cuda") == 1024  # fewer, larger launches on an accelerator


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
def test_a_trained_head_gets_the_plain_heads_weight_gradient(autocast) -> None:
    hidden, weight, labels = case(tokens=40)
    grads = []
    for fn, kwargs in ((linear_cross_entropy, {"rows": 7}), (plain, {})):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = fn(h, w, labels, **kwargs)
        (2 * loss).backward()
        grads.append((h.grad, w.grad))
    (h_got, w_got), (h_ref, w_ref) = grads
    assert w_got.dtype == torch.float32 and w_got.abs().max() > 0
    tolerance = 2e-2 if autocast else 1e-6  # bf16: the chunks' partial products are rounded one by one
    for got, ref in ((h_got, h_ref), (w_got, w_ref)):
        assert (got - ref).abs().max().item() <= tolerance * ref.abs().max().item()
