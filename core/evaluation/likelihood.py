"""Scores read off the model's log-probabilities: no generation, no sampling noise.

A multiple-choice item is right when its answer's continuation is the likeliest of the choices
(``accuracy``: summed log-probability; ``accuracy_norm``: per token, which does not favour short
choices). Perplexity is exp of the mean negative log-likelihood over every predicted token.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def continuation_logprobs(model: Any, prompt: Sequence[int], continuations: Sequence[Sequence[int]],
                          max_length: int) -> list[tuple[float, int]]:
    """(summed log-probability, token count) of each continuation after ``prompt``, in one batch."""
    rows, spans = [], []
    for cont in continuations:
        ids = list(prompt) + list(cont)
        cut = max(0, len(ids) - max_length)  # keep the continuation; drop the prompt's start if needed
        rows.append(ids[cut:])
        spans.append((len(prompt) - cut, len(ids) - cut))
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    device = _device(model)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    logp = F.log_softmax(logits, dim=-1)
    out = []
    for i, (start, end) in enumerate(spans):
        targets = ids[i, start:end].to(device)
        picked = logp[i, start - 1 : end - 1].gather(-1, targets[:, None]).squeeze(-1)
        out.append((float(picked.sum()), end - start))
    return out


def multiple_choice(model: Any, prompt: Sequence[int], choices: Sequence[Sequence[int]], answer: int,
                    max_length: int) -> dict[str, float]:
    scores = continuation_logprobs(model, prompt, choices, max_length)
    best = max(range(len(scores)), key=lambda i: scores[i][0])
    best_norm = max(range(len(scores)), key=lambda i: scores[i][0] / max(scores[i][1], 1))
    return {"accuracy": float(best == answer), "accuracy_norm": float(best_norm == answer)}


@torch.no_grad()
def negative_log_likelihood(model: Any, ids: Sequence[int], max_length: int) -> tuple[float, int]:
    """(summed NLL, predicted tokens) of a text, in windows of ``max_length`` tokens."""
    total, count = 0.0, 0
    device = _device(model)
    for start in range(0, max(len(ids) - 1, 0), max_length):
        window = torch.tensor(list(ids[start : start + max_length + 1]), device=device)[None]
        if window.shape[1] < 2:
            break
        logits = model(input_ids=window[:, :-1]).logits.float()
        nll = F.cross_entropy(logits[0], window[0, 1:], reduction="sum")
        total += float(nll)
        count += window.shape[1] - 1
    return total, count


def perplexity(nll: float, tokens: int) -> float:
    return math.exp(nll / tokens) if tokens else float("nan")
