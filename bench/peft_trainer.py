"""The plain PEFT + transformers ``Trainer`` script that ``swiftune sft`` is compared with (measurement 7).

What a user would write without swiftune: load the model and tokenizer, render each conversation
with the tokenizer's chat template, label the assistant turns only (the prompt masked with -100,
as SFT does and as ``swiftune sft`` does), train LoRA with the ``Trainer``. Prints one JSON line
with the train loop's runtime and the non-padding tokens it saw.

``--lazy`` tokenizes each row when the Trainer asks for it (all rows form the dataset), as a script
that does not prepare its data up front does; ``--first-step-file`` gets the wall-clock time of the
end of the first optimizer step (the start-up measurement, ``bench/startup.py``).

    python bench/peft_trainer.py --model DIR --data FILE.jsonl --steps 8 --batch 4 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--lazy", action="store_true", help="tokenize rows on demand, every row in the dataset")
    p.add_argument("--first-step-file", help="write time.time() there when the first optimizer step ends")
    p.add_argument("--flatten", action="store_true", help="transformers' DataCollatorWithFlattening (no padding)")
    return p.parse_args(argv)


def assistant_labels(tokenizer, messages: list[dict], ids: list[int]) -> list[int]:
    """-100 everywhere but the tokens of each assistant turn (found by rendering the prefixes)."""
    def render(msgs: list[dict], prompt: bool) -> list[int]:
        out = tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=prompt, return_dict=False)
        return list(out["input_ids"] if isinstance(out, dict) else out)

    labels = [-100] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            start, end = len(render(messages[:i], True)), len(render(messages[: i + 1], False))
            labels[start:end] = ids[start:end]
    return labels


class LazyRows:
    """A map-style dataset that encodes a row when it is read."""

    def __init__(self, rows: list[dict], encode) -> None:
        self.rows, self.encode = rows, encode

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.encode(self.rows[i])


def first_step_callback(path: str):
    """A Trainer callback that writes the wall-clock time when the first optimizer step has ended."""
    from transformers import TrainerCallback

    class FirstStepTime(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                with open(path, "w") as fh:
                    fh.write(repr(time.time()))

    return FirstStepTime()


def main(argv: list[str] | None = None) -> dict:
    start = time.perf_counter()
    args = parse(argv)
    import peft
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, DataCollatorWithFlattening,
                              Trainer, TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    # On a GPU, the checkpoint's own dtype (bf16 for the GPU suite), as a user loads it; on CPU fp32.
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto" if cuda else torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=0.0,
                                                       target_modules="all-linear", task_type="CAUSAL_LM"))
    rows = [json.loads(line) for line in open(args.data) if line.strip()]

    def encode(row: dict) -> dict:
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        labels = assistant_labels(tokenizer, row["messages"], ids)[: args.max_length]
        ids = ids[: args.max_length]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}

    if args.lazy:
        examples = LazyRows(rows, encode)
    else:
        need = args.steps * args.batch
        examples = [encode(row) for row in (rows * (need // len(rows) + 1))[:need]]
    targs = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1, learning_rate=2e-4, lr_scheduler_type="cosine",
        warmup_steps=0.05, bf16=args.precision == "bf16", logging_steps=1, save_strategy="no",
        report_to="none", seed=42, use_cpu=not cuda, include_num_input_tokens_seen="non_padding",
    )  # fmt: skip
    collator = (DataCollatorWithFlattening() if args.flatten
                else DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    trainer = Trainer(model=model, args=targs, train_dataset=examples, data_collator=collator)
    if args.first_step_file:
        trainer.add_callback(first_step_callback(args.first_step_file))
    metrics = trainer.train().metrics
    out = {"train_runtime": metrics["train_runtime"], "tokens": trainer.state.num_input_tokens_seen,
           "steps": trainer.state.global_step, "wall": time.perf_counter() - start}
    print("RESULT " + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
