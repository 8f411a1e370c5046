"""What every measurement shares: the shapes, the model, the clock, the alternating rounds.

The machine is shared and noisy, so every comparison runs its contenders in one process, on deep
copies of one base model, in rounds whose order reverses every other round; the process CPU time
(``time.process_time``, all threads) is the main measure, and min and median are both reported.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

#: The embedded default model (``swiftune.loading``); its shape is the fallback.
EMBEDDED = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Shape:
    """A Llama-style causal LM and the batch the measurements feed it."""

    hidden: int = 576
    layers: int = 30
    heads: int = 9
    kv_heads: int = 3
    intermediate: int = 1536
    vocab: int = 49152
    seq: int = 256
    batch: int = 4
    r: int = 8
    alpha: int = 16
    use_embedded: bool = True

    def describe(self) -> str:
        return (
            f"hidden {self.hidden}, {self.layers} layers, {self.heads} heads ({self.kv_heads} kv), "
            f"intermediate {self.intermediate}, vocab {self.vocab}"
        )


FULL = Shape()
QUICK = Shape(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=512, seq=32, batch=2, use_embedded=False)


@dataclass
class Settings:
    """Everything a measurement needs to know about this run."""

    shape: Shape
    quick: bool
    rounds: int
    warmup: int
    threads: int
    long_seq: int = 512  # measurement 6
    long_batch: int = 8
    e2e_steps: int = 16  # measurement 7

    @property
    def tokens(self) -> int:
        return self.shape.seq * self.shape.batch


# -- the model ---------------------------------------------------------------------------------------
_MODEL_SOURCE: dict[str, str] = {}


def random_llama(shape: Shape) -> nn.Module:
    """A ``LlamaForCausalLM`` of ``shape`` with seeded random weights (SmolLM2-135M's layout)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        max_position_embeddings=2048, tie_word_embeddings=True, pad_token_id=0,
    )  # fmt: skip
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg).float()


def base_model(shape: Shape) -> nn.Module:
    """The embedded SmolLM2-135M-Instruct when installed (and ``shape`` is its shape), else random weights."""
    if shape.use_embedded:
        try:
            from swiftune.loading import load_model

            model, _ = load_model(EMBEDDED, dtype=torch.float32)
            model.config._attn_implementation = "sdpa"
            _MODEL_SOURCE["source"] = f"`{EMBEDDED}` (the embedded pretrained model, loaded by `swiftune.loading`)"
            return model.float().train()
        except Exception as exc:  # noqa: BLE001 - any failure means: use the shape instead
            _MODEL_SOURCE["source"] = f"SmolLM2-135M's shape with random weights ({EMBEDDED} unusable: {exc})"
    else:
        _MODEL_SOURCE.setdefault("source", "a tiny Llama with random weights (quick mode)")
    return random_llama(shape).train()


def model_source() -> str:
    return _MODEL_SOURCE.get("source", "not built")


def input_ids(shape: Shape, seq: int | None = None, batch: int | None = None, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(shape.vocab, (batch or shape.batch, seq or shape.seq), generator=g)


def lora_dict(shape: Shape) -> dict[str, Any]:
    return {"tuner": "lora", "r": shape.r, "lora_alpha": shape.alpha, "lora_dropout": 0.0, "target_modules": "all-linear"}


def lora_pair(shape: Shape, base: nn.Module | None = None) -> dict[str, nn.Module]:
    """swiftune and PEFT LoRA on copies of one base model, with identical, non-zero LoRA weights."""
    import peft

    from swiftune import Swift

    base = base if base is not None else base_model(shape)
    ours = Swift.prepare(copy.deepcopy(base), lora_dict(shape))
    cfg = peft.LoraConfig(r=shape.r, lora_alpha=shape.alpha, lora_dropout=0.0, target_modules="all-linear",
                          task_type="CAUSAL_LM")
    theirs = peft.get_peft_model(copy.deepcopy(base), cfg)
    # B starts at zero in both: give it small random values (the same in both), so that the LoRA
    # branch changes the output and the timed work includes a non-trivial update.
    torch.manual_seed(1)
    peft_params = dict(theirs.named_parameters())
    ours_params = [(n, p) for n, p in ours.named_parameters() if p.requires_grad]
    if len(ours_params) != sum(p.requires_grad for p in theirs.parameters()):
        raise RuntimeError("swiftune and PEFT train a different number of tensors")
    with torch.no_grad():
        for name, p in ours_params:
            twin = peft_params["base_model.model." + name.removeprefix("model.")]
            if ".lora_B." in name:
                twin.normal_(std=0.02)
            p.copy_(twin)
    return {"swiftune": ours, "peft": theirs}


def matmul_params(model: nn.Module) -> int:
    """N: parameters of the base model's matmuls (every Linear weight, lm_head included, LoRA excluded)."""
    total, seen = 0, set()
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and "lora_" not in name and id(m.weight) not in seen:
            seen.add(id(m.weight))
            total += m.weight.numel()
    return total


# -- timing ------------------------------------------------------------------------------------------
@dataclass
class Timings:
    """Seconds per call, one entry per round."""

    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    @property
    def cpu_min(self) -> float:
        return min(self.cpu)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def wall_min(self) -> float:
        return min(self.wall)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)


def alternate(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int, label: str = "") -> dict[str, Timings]:
    """Per-call times; each round calls every contender once, in reversed order every other round."""
    names = list(calls)
    for _ in range(warmup):
        for n in names:
            calls[n]()
    out = {n: Timings() for n in names}
    for i in range(rounds):
        for n in names if i % 2 == 0 else names[::-1]:
            c0, w0 = time.process_time(), time.perf_counter()
            calls[n]()
            out[n].cpu.append(time.process_time() - c0)
            out[n].wall.append(time.perf_counter() - w0)
        print(f"  {label} round {i + 1}/{rounds}: " + ", ".join(f"{n} {out[n].cpu[-1]:.3f}s" for n in names), flush=True)
    return out


def ratio(t: dict[str, Timings], a: str, b: str) -> tuple[float, float, float]:
    """(min ratio, median ratio, paired median ratio) of ``a``'s CPU time over ``b``'s."""
    paired = statistics.median(x / y for x, y in zip(t[a].cpu, t[b].cpu))
    return t[a].cpu_min / t[b].cpu_min, t[a].cpu_median / t[b].cpu_median, paired


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def causal_lm_loss(model: nn.Module, batch: dict[str, Any], head_loss: Any = None) -> torch.Tensor:
    """The model's own loss, or swiftune sft's (``head_loss``: the LM head fused into the loss)."""
    return model(**batch).loss if head_loss is None else head_loss.loss(model, batch)[0]


def fused_head(model: nn.Module) -> Any:
    """swiftune sft's fused head loss on ``model`` (whose loss check is measurement 1's step-0 check)."""
    from swiftune.recipes.head_loss import HeadLoss, fusable_head

    head = fusable_head(model)
    if head is None:
        raise RuntimeError("the model's LM head cannot be fused into the loss")
    return HeadLoss(head)


def train_step(model: nn.Module, ids: torch.Tensor, autocast: torch.dtype | None = None, head_loss: Any = None,
               **inputs: Any) -> Callable[[], float]:
    """One forward + backward + AdamW step on ``ids`` (labels = ids); ``autocast``: CPU autocast dtype;
    ``head_loss``: swiftune sft's fused head loss; ``inputs``: more model inputs (``use_cache=False``)."""
    opt = torch.optim.AdamW(trainable(model), lr=1e-4)

    def step() -> float:
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            loss = causal_lm_loss(model, {"input_ids": ids, "labels": ids, **inputs}, head_loss)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step
