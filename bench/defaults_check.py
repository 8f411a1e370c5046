"""Do ``swiftune sft``'s defaults learn? A quick check on the embedded model (CPU, about a minute).

80 rows that follow one simple rule (``What is 7 + 12?`` -> ``7 + 12 = 19``), three epochs of
``swiftune sft`` with every other setting at its default, then 30 sums the training data never
showed, answered greedily. An answer counts when it is exactly ``A + B = C``. The base model
scores 0 (it answers in sentences); the target for the defaults is at least 27 of 30.

    HF_HUB_OFFLINE=1 python -m bench.defaults_check                 # the defaults
    HF_HUB_OFFLINE=1 python -m bench.defaults_check --set lora_alpha=8 --set warmup_steps=0

``--set`` overrides one sft argument (ms-swift names work too), to compare a default with another
value. It prints the score, the wrong answers and the first / last logged losses.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

TRAIN_ROWS = 80
TEST_ROWS = 30
EPOCHS = 3


def sums(seed: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Disjoint train / test pairs of numbers from 1 to 20."""
    pairs = [(a, b) for a in range(1, 21) for b in range(1, 21)]
    random.Random(seed).shuffle(pairs)
    return pairs[:TRAIN_ROWS], pairs[TRAIN_ROWS:TRAIN_ROWS + TEST_ROWS]


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def answer(a: int, b: int) -> str:
    return f"{a} + {b} = {a + b}"


def write_rows(path: Path, pairs: list[tuple[int, int]]) -> Path:
    with path.open("w") as fh:
        for a, b in pairs:
            messages = [{"role": "user", "content": question(a, b)}, {"role": "assistant", "content": answer(a, b)}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def score(run_dir: Path, pairs: list[tuple[int, int]]) -> tuple[int, list[str]]:
    from swiftune.recipes.arguments import GenerationArguments
    from swiftune.recipes.generation import Generator
    from swiftune.recipes.rebuild import rebuild

    built = rebuild([str(run_dir)])
    generator = Generator(model=built.model, tokenizer=built.tokenizer, template=built.template)
    prompts = [generator.encode([{"role": "user", "content": question(a, b)}]) for a, b in pairs]
    outputs = generator.generate(prompts, GenerationArguments(max_new_tokens=16))
    wrong = [f"{question(a, b)} -> {out.strip()!r}" for (a, b), out in zip(pairs, outputs) if out.strip() != answer(a, b)]
    return len(pairs) - len(wrong), wrong


def parse_sets(items: list[str]) -> dict[str, object]:
    import yaml

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one sft argument")
    parser.add_argument("--seed", type=int, default=0, help="which rows are train and test")
    args = parser.parse_args()

    import swiftune
    from swiftune.recipes.runtime import quiet_libraries

    quiet_libraries()
    train, test = sums(args.seed)
    overrides = parse_sets(args.set)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_rows(Path(tmp) / "sums.jsonl", train)
        run_dir = Path(tmp) / "run"
        start = time.monotonic()
        swiftune.sft(dataset=[str(data)], num_train_epochs=EPOCHS, output_dir=str(run_dir), **overrides)
        trained = time.monotonic() - start
        right, wrong = score(run_dir, test)
        losses = [r["loss"] for r in map(json.loads, (run_dir / "logging.jsonl").read_text().splitlines())
                  if "loss" in r]
    print(f"\nsettings: {overrides or 'the defaults'}")
    print(f"score: {right}/{len(test)} unseen sums right ({trained:.0f} s of training; "
          f"loss {losses[0]:.2f} -> {losses[-1]:.2f} over {len(losses)} logged points)")
    for line in wrong:
        print(f"  wrong: {line}")


if __name__ == "__main__":
    main()
