"""One DPO contender in a process of its own: step times and peak memory (``python -m bench.dpo_child``).

``swiftune``: ``swiftune rlhf``'s trainer (LoRA through ``Swift.prepare``; the reference is the same
model with its adapter disabled, its log-probabilities computed in one pass before training).
``trl+peft``: TRL's ``DPOTrainer`` on PEFT's LoRA with a separate reference model (a copy of the
base), as a TRL user without ``precompute_ref_log_probs`` runs it. Same model, rows, LoRA settings,
batch and precision. The peak is the kernel's high-water mark of resident memory (``VmHWM``), reset
after the imports, minus the resident memory at that point: the models, data and training.
Prints one JSON line: step CPU / wall seconds, the reference pass, peak memory.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import time
from pathlib import Path

from .child import proc_status_bytes


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rows(n: int, prompt_words: int, answer_words: int, seed: int = 0) -> list[dict]:
    """Text rows of about the given lengths in words (one token each in SmolLM2's vocabulary)."""
    rng = random.Random(seed)
    words = "the a river stone light blue green quiet small large fast slow open close bright dark".split()

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    return [{"prompt": text(prompt_words), "chosen": text(answer_words), "rejected": text(answer_words)} for _ in range(n)]


class StepClock:
    """Trainer callback: CPU and wall seconds of each optimizer step."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self) -> None:
                self.cpu: list[float] = []
                self.wall: list[float] = []

            def on_step_begin(self, args, state, control, **kwargs):
                self._t = (_cpu(), time.perf_counter())

            def on_step_end(self, args, state, control, **kwargs):
                self.cpu.append(_cpu() - self._t[0])
                self.wall.append(time.perf_counter() - self._t[1])

        return _Clock()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--contender", choices=["swiftune", "trl+peft"], required=True)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt-words", type=int, default=64)
    p.add_argument("--answer-words", type=int, default=192)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast, fp32 weights")
    a = p.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    import peft
    from datasets import Dataset
    from trl import DPOTrainer

    from swiftune import Swift
    from swiftune.recipes import rlhf
    from swiftune.recipes.rlhf_arguments import RlhfArguments
    from swiftune.recipes.rlhf_trainers import method_config
    from swiftune.recipes.sft import training_kwargs

    from .common import FULL, QUICK, base_model, lora_dict, model_source

    shape = QUICK if a.quick else FULL
    baseline = proc_status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    model = base_model(shape)
    from swiftune.loading import load_model

    tokenizer = load_model("smollm2-135m-instruct")[1] if shape.use_embedded else None
    if tokenizer is None:
        from swiftune.testing.tokenizers import tiny_tokenizer

        tokenizer = tiny_tokenizer()
    n = a.batch * (a.steps + 1)
    data = rows(n, a.prompt_words, a.answer_words)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-dpo-{os.getpid()}"
    args = RlhfArguments(model="bench", dataset=["bench"], precision=a.precision, per_device_train_batch_size=a.batch,
                         gradient_accumulation_steps=1, max_steps=a.steps + 1, val_ratio=0.0, logging_steps=1000,
                         save_steps=10_000, max_length=a.prompt_words + a.answer_words + 16)
    clock = StepClock()
    t0 = (_cpu(), time.perf_counter())
    if a.contender == "swiftune":
        swift = Swift.prepare(model, lora_dict(shape))
        trainer = rlhf.make_trainer(args, swift, None, tokenizer, data, [], out, a.precision, callbacks=[clock])
    else:
        cfg = lora_dict(shape)
        lora = peft.LoraConfig(r=cfg["r"], lora_alpha=cfg["lora_alpha"], lora_dropout=0.0, target_modules="all-linear")
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        config = method_config(args, training_kwargs(args, out, a.precision, False), precompute_reference=False)
        trainer = DPOTrainer(model=model, ref_model=reference, args=config, train_dataset=Dataset.from_list(data),
                             processing_class=tokenizer, peft_config=lora, callbacks=[clock])
    setup_cpu, setup_wall = _cpu() - t0[0], time.perf_counter() - t0[1]
    trainer.train()
    peak = proc_status_bytes("VmHWM")
    print(json.dumps({"contender": a.contender, "step_cpu": clock.cpu[1:], "step_wall": clock.wall[1:],
                      "setup_cpu": setup_cpu, "setup_wall": setup_wall, "peak_above_imports": peak - baseline,
                      "tokens_per_step": 2 * a.batch * (a.prompt_words + a.answer_words), "source": model_source()}))


if __name__ == "__main__":
    main()
