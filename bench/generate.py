"""Measurement 3: ``generate`` tokens/s with an unmerged LoRA adapter vs the base model (and PEFT)."""

from __future__ import annotations

from typing import Any

import torch

from .common import Settings, alternate, base_model, input_ids, lora_pair, ratio
from .report import Chart, Section, fmt, table

TITLE = "3. Generation with an unmerged adapter"


def generate_call(model: torch.nn.Module, ids: torch.Tensor, new: int):
    mask = torch.ones_like(ids)

    def call() -> None:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                 do_sample=False, pad_token_id=0)
        assert out.shape[1] == ids.shape[1] + new

    return call


def run(settings: Settings, ctx: dict[str, Any]) -> Section:
    shape = settings.shape
    prompt, new = (16, 8) if settings.quick else (32, 32)
    base = base_model(shape).eval()
    pair = lora_pair(shape, base)
    ids = input_ids(shape, seq=prompt, batch=1)
    calls = {
        "base": generate_call(base, ids, new),
        "swiftune unmerged": generate_call(pair["swiftune"].eval(), ids, new),
        "peft unmerged": generate_call(pair["peft"].eval(), ids, new),
    }
    t = alternate(calls, settings.rounds, max(1, settings.warmup), "generate")
    rows = [[n, f"{new / x.cpu_min:.1f}", f"{new / x.cpu_median:.1f}", f"{new / x.wall_median:.1f}",
             fmt(ratio(t, n, "base")[1])] for n, x in t.items()]
    lines = table(["contender", "tokens / CPU s (best)", "tokens / CPU s (median)", "tokens / wall s (median)",
                   "time / base (median)"], rows)
    chart = Chart("generate", "Greedy generation, tokens per CPU second (median)", list(t),
                  [new / x.cpu_median for x in t.values()], "tokens / CPU s")
    intro = (f"Greedy decoding, batch 1, prompt {prompt} tokens, {new} new tokens (KV cache on), fp32; "
             f"{settings.rounds} rounds.")
    return Section("generate", TITLE, intro, lines, [chart], [])
