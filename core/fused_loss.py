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
                ignore_index: int, rows: int, want_grad: bool, want_weight_grad: bool) -> torch.Tensor:
        compute = weight.dtype
        h = hidden.to(compute)
        grad = torch.empty_like(h) if want_grad else None
        # The weight's gradient sums over every chunk: accumulated in fp32 (autograd's one GEMM
        # would round once at the end; each chunk's partial product is rounded here).
        weight_grad = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_weight_grad else None
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
            if grad is not None or weight_grad is not None:
                weights = torch.where(valid, scale, 0.0)  # no 0 * inf when nothing is labelled
                exp.mul_((weights / sums)[:, None])  # softmax, times the loss weight of each row
                exp[torch.arange(exp.shape[0], device=exp.device), safe] -= weights
                logits_grad = exp.to(compute)
                if grad is not None:
                    torch.mm(logits_grad, weight, out=grad[part])
                if weight_grad is not None:
                    weight_grad += (logits_grad.t() @ h[part]).float()
        empty = h.new_empty(0)
        ctx.save_for_backward(empty if grad is None else grad, empty if weight_grad is None else weight_grad)
        ctx.hidden_dtype, ctx.weight_dtype = hidden.dtype, weight.dtype
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad, weight_grad = ctx.saved_tensors
        wanted = ctx.needs_input_grad
        if (wanted[0] and grad.numel() == 0) or (wanted[1] and weight_grad.numel() == 0):
            raise RuntimeError("linear_cross_entropy: a gradient was not computed in the forward pass "
                               "(its input did not require grad then)")
        hidden_grad = grad.to(ctx.hidden_dtype) * grad_output if wanted[0] else None
        # Rounded to the weight's (compute) dtype, as autograd's gradient of that tensor would be.
        head_grad = (weight_grad * grad_output).to(ctx.weight_dtype) if wanted[1] else None
        return hidden_grad, head_grad, None, None, None, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                         num_items_in_batch: torch.Tensor | int | None = None, ignore_index: int = -100,
                         rows: int | None = None) -> torch.Tensor:
    """``cross_entropy(F.linear(hidden, weight).float(), labels)`` computed ``rows`` tokens at a time.

    ``hidden``: (..., H); ``labels``: the matching (...) token ids, already aligned with the
    positions (shifted for a causal LM). The reduction is transformers' ``ForCausalLMLoss``'s: the
    mean over labelled tokens, or their sum divided by ``num_items_in_batch`` when given. Under
    autocast the head runs in the autocast dtype; ``weight`` may already be in that dtype (a cached
    copy of a frozen weight). A weight that requires grad gets its gradient (full fine-tuning),
    computed in the same pass.
    """
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
    want_weight_grad = torch.is_grad_enabled() and weight.requires_grad
    with torch.autocast(device, enabled=False):
        return _ChunkedHeadLoss.apply(flat_hidden, weight.to(compute), flat_labels, scale, ignore_index,
                                      rows or chunk_rows(weight.shape[0], compute, device), want_grad,
                                      want_weight_grad)
