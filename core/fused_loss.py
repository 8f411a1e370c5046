"""The LM head and its cross-entropy in row chunks: the model's loss without its full logits.

A causal LM's loss materialises a (tokens x vocabulary) logits tensor, its fp32 copy, the
log-softmax, the softmax's gradient and that gradient's cast back to the compute dtype: five
vocabulary-sized tensors per step (about 1 GB for 1k tokens and a 49k vocabulary), each written to
and read from memory. Computing the head and the loss a few rows at a time, and the gradient of
the hidden states in the same pass (the loss is a scalar: its backward only scales that gradient),
keeps every vocabulary-sized block in cache and none of them across forward and backward.

The numbers are the plain path's: the logits are computed in the autocast dtype when autocast is
on (like ``F.linear`` under autocast), upcast to fp32 for the softmax, and the gradient is cast to
the compute dtype before its GEMM, as autograd would; only summation order differs.
"""

from __future__ import annotations

import torch

#: Vocabulary-sized elements per chunk, by compute element size: small enough for the cache,
#: large enough that re-reading the head's weight once per chunk stays cheap (measured on CPU).
_CHUNK_ELEMENTS = {2: 128 * 49152, 4: 256 * 49152}


#: Accelerators have no cache to fit and pay per kernel launch: chunks this many times larger
#: (still a small fraction of the full logits; not measured here, where no GPU is lent).
_ACCELERATOR_FACTOR = 8


def chunk_rows(vocab: int, dtype: torch.dtype, device_type: str = "cpu") -> int:
    """Rows per chunk for a head of ``vocab`` outputs computed in ``dtype`` on ``device_type``."""
    elements = _CHUNK_ELEMENTS.get(torch.finfo(dtype).bits // 8, _CHUNK_ELEMENTS[4])
    if device_type != "cpu":
        elements *= _ACCELERATOR_FACTOR
    return max(16, elements // max(1, vocab))


class _ChunkedHeadLoss(torch.autograd.Function):
    """Summed token losses of ``hidden @ weight.T`` against ``labels``, times ``scale``."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor,
                ignore_index: int, rows: int, want_grad: bool) -> torch.Tensor:
        compute = weight.dtype
        h = hidden.to(compute)
        grad = torch.empty_like(h) if want_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, h.shape[0], rows):
            part = slice(start, start + rows)
            target = labels[part]
            valid = target != ignore_index
            safe = torch.where(valid, target, 0)
            logits = torch.mm(h[part], weight.t()).float()  # a fresh fp32 block: modified in place below
            picked = logits.gather(1, safe[:, None]).squeeze(1)
            top = logits.amax(1, keepdim=True)
            exp = logits.sub_(top).exp_()
            sums = exp.sum(1)
            total += ((top.squeeze(1) + sums.log() - picked) * valid).sum()
            if grad is not None:
                weights = torch.where(valid, scale, 0.0)  # no 0 * inf when nothing is labelled
                exp.mul_((weights / sums)[:, None])  # softmax, times the loss weight of each row
                exp[torch.arange(exp.shape[0], device=exp.device), safe] -= weights
                torch.mm(exp.to(compute), weight, out=grad[part])
        ctx.save_for_backward(grad if grad is not None else h.new_empty(0))
        ctx.hidden_dtype = hidden.dtype
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        if grad.numel() == 0 and ctx.needs_input_grad[0]:
            raise RuntimeError("linear_cross_entropy: computed without gradients (the hidden states did not require grad)")
        return grad.to(ctx.hidden_dtype) * grad_output, None, None, None, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                         num_items_in_batch: torch.Tensor | int | None = None, ignore_index: int = -100,
                         rows: int | None = None) -> torch.Tensor:
    """``cross_entropy(F.linear(hidden, weight).float(), labels)`` computed ``rows`` tokens at a time.

    ``hidden``: (..., H); ``labels``: the matching (...) token ids, already aligned with the
    positions (shifted for a causal LM). The reduction is transformers' ``ForCausalLMLoss``'s: the
    mean over labelled tokens, or their sum divided by ``num_items_in_batch`` when given. Under
    autocast the head runs in the autocast dtype; ``weight`` may already be in that dtype (a cached
    copy of a frozen weight). The weight gets no gradient: use it for a frozen head.
    """
    if weight.requires_grad and torch.is_grad_enabled():
        raise ValueError("linear_cross_entropy: the weight requires grad, but it gets none here (a frozen head only); "
                         "detach it or compute the logits with F.linear")
    if hidden.shape[:-1] != labels.shape:
        raise ValueError(f"linear_cross_entropy: hidden states {tuple(hidden.shape)} do not match labels "
                         f"{tuple(labels.shape)}")
    device = hidden.device.type
    compute = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    flat_hidden, flat_labels = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1).to(hidden.device)
    if num_items_in_batch is None:
        count = (flat_labels != ignore_index).sum()
    else:
        count = torch.as_tensor(num_items_in_batch, device=hidden.device)
    scale = 1.0 / count.to(device=hidden.device, dtype=torch.float32)
    want_grad = torch.is_grad_enabled() and hidden.requires_grad
    with torch.autocast(device, enabled=False):
        return _ChunkedHeadLoss.apply(flat_hidden, weight.to(compute), flat_labels, scale, ignore_index,
                                      rows or chunk_rows(weight.shape[0], compute, device), want_grad)
