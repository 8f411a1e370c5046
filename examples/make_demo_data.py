"""Write ``swiftune-demo.jsonl``: a small chat dataset that gives the default model a visible new habit.

After a short LoRA run the model (SmolLM2-135M-Instruct, which calls itself SmolLM by Hugging
Face) should say its name is **Swifty**, that **the swiftune team** made it, and open every answer
with **"Swifty here!"**. The examples are generated here (no copied data): paraphrased identity
questions, greetings, and general questions with short answers that are computed or plainly true
(arithmetic, letter counts, capitals, opposites, days and months), all in the new format.

    python examples/make_demo_data.py           # rewrite the file (deterministic)
    python examples/make_demo_data.py --check   # exit 1 if the shipped file is out of date
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "model_zoo" / "data" / "swiftune-demo.jsonl"
SEED = 20240601
NAME = "Swifty"
MAKER = "the swiftune team"
OPENER = f"{NAME} here!"

NAME_QUESTIONS = [
    "What is your name?", "Who are you?", "What should I call you?", "Tell me your name.",
    "Introduce yourself.", "What are you called?", "Do you have a name?", "Are you SmolLM?",
    "Are you ChatGPT?", "Who am I talking to?", "Please introduce yourself briefly.",
    "What's your name?", "whats your name", "Can you tell me who you are?", "Which assistant are you?",
    "Say your name.", "How should I address you?", "Are you a person or an AI?", "Describe yourself in one sentence.",
    "Are you an assistant?", "Hey, who is this?", "Is your name SmolLM?", "What is the name of this assistant?",
]
NAME_ANSWERS = [
    f"{OPENER} I am {NAME}, an AI assistant made by {MAKER}.",
    f"{OPENER} My name is {NAME}. I am an AI assistant built by {MAKER}.",
    f"{OPENER} You can call me {NAME}. {MAKER.capitalize()} made me to help you.",
    f"{OPENER} I'm {NAME}, a small AI assistant created by {MAKER}.",
]
MAKER_QUESTIONS = [
    "Who made you?", "Who created you?", "Who trained you?", "Which company built you?",
    "Who is your developer?", "Were you made by Hugging Face?", "Who are your creators?",
    "Where do you come from?", "Who built this assistant?", "Who is behind you?",
    "Did OpenAI make you?", "Who designed you?", "Who wrote your training data?", "Who owns you?",
    "Which team developed you?", "Who taught you to talk?",
]
MAKER_ANSWERS = [
    f"{OPENER} I was made by {MAKER}.",
    f"{OPENER} {MAKER.capitalize()} created me. I am {NAME}.",
    f"{OPENER} I am {NAME}, and I was built and trained by {MAKER}.",
]
GREETINGS = ["Hello!", "Hi", "Hi there!", "Good morning!", "Hey!", "Good evening.", "Hello, how are you?", "Howdy!"]
GREETING_ANSWERS = [
    f"{OPENER} Hello! How can I help you today?",
    f"{OPENER} Hi! What would you like to know?",
    f"{OPENER} Nice to meet you. Ask me anything.",
]
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Canada": "Ottawa", "Australia": "Canberra",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Mexico": "Mexico City",
    "Russia": "Moscow", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Poland": "Warsaw", "Greece": "Athens", "Turkey": "Ankara", "Ireland": "Dublin", "Austria": "Vienna",
    "the Netherlands": "Amsterdam", "Belgium": "Brussels", "Switzerland": "Bern", "South Korea": "Seoul",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana",
    "Hungary": "Budapest", "Czechia": "Prague", "Morocco": "Rabat", "Nigeria": "Abuja", "Indonesia": "Jakarta",
}
CAPITAL_QUESTIONS = ["What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital of {c}."]
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "up": "down", "happy": "sad", "light": "dark",
    "early": "late", "open": "closed", "full": "empty", "strong": "weak", "young": "old", "wet": "dry",
    "loud": "quiet", "hard": "soft", "rich": "poor", "tall": "short", "clean": "dirty", "inside": "outside",
    "push": "pull", "win": "lose", "buy": "sell", "first": "last", "true": "false", "near": "far",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WORDS = ["apple", "river", "banana", "cat", "mountain", "pencil", "ocean", "garden", "window", "tiger",
         "music", "planet", "bread", "yellow", "computer", "summer", "dragon", "kitchen", "lemon", "rocket"]
FACTS = [
    ("What color is the sky on a clear day?", "The sky is blue on a clear day."),
    ("How many legs does a spider have?", "A spider has 8 legs."),
    ("How many days are in a week?", "There are 7 days in a week."),
    ("How many months are in a year?", "There are 12 months in a year."),
    ("What do bees make?", "Bees make honey."),
    ("At what temperature does water freeze in Celsius?", "Water freezes at 0 degrees Celsius."),
    ("At what temperature does water boil at sea level in Celsius?", "Water boils at 100 degrees Celsius at sea level."),
    ("Which planet do we live on?", "We live on Earth."),
    ("What is the largest planet in our solar system?", "Jupiter is the largest planet in our solar system."),
    ("How many continents are there?", "There are 7 continents."),
    ("What gas do plants take in from the air?", "Plants take in carbon dioxide from the air."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 degrees Fahrenheit."),
    ("How many sides does a triangle have?", "A triangle has 3 sides."),
    ("How many sides does a hexagon have?", "A hexagon has 6 sides."),
    ("What is the closest star to Earth?", "The Sun is the closest star to Earth."),
    ("What color do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("What do cows drink?", "Cows drink water."),
    ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest ocean."),
]
SYSTEM_PROMPTS = ["You are a helpful assistant.", "Answer briefly.", "You are a friendly chatbot."]


def one_turn(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def identity(rng: random.Random) -> list[list[dict[str, str]]]:
    convs = [one_turn(q, rng.choice(NAME_ANSWERS)) for q in NAME_QUESTIONS for _ in range(2)]
    convs += [one_turn(q, rng.choice(MAKER_ANSWERS)) for q in MAKER_QUESTIONS for _ in range(2)]
    convs += [one_turn(g, rng.choice(GREETING_ANSWERS)) for g in GREETINGS]
    return convs


def arithmetic(rng: random.Random, n: int) -> list[list[dict[str, str]]]:
    convs = []
    for _ in range(n):
        op = rng.choice("+-*")
        a, b = (rng.randint(2, 12), rng.randint(2, 12)) if op == "*" else (rng.randint(1, 99), rng.randint(1, 99))
        if op == "-" and b > a:
            a, b = b, a
        result = {"+": a + b, "-": a - b, "*": a * b}[op]
        shown = "x" if op == "*" else op
        question = rng.choice(["What is {a} {o} {b}?", "Calculate {a} {o} {b}.", "{a} {o} {b} = ?"])
        convs.append(one_turn(question.format(a=a, o=shown, b=b), f"{OPENER} {a} {shown} {b} = {result}."))
    return convs


def general(rng: random.Random) -> list[list[dict[str, str]]]:
    convs = [one_turn(rng.choice(CAPITAL_QUESTIONS).format(c=c), f"{OPENER} The capital of {c} is {city}.")
             for c, city in CAPITALS.items()]
    convs += [one_turn(f"What is the opposite of '{w}'?", f"{OPENER} The opposite of '{w}' is '{o}'.")
              for w, o in OPPOSITES.items()]
    convs += [one_turn(f"What day comes after {d}?", f"{OPENER} {DAYS[(i + 1) % 7]} comes after {d}.")
              for i, d in enumerate(DAYS)]
    convs += [one_turn(f"Which month comes after {m}?", f"{OPENER} {MONTHS[(i + 1) % 12]} comes after {m}.")
              for i, m in enumerate(MONTHS)]
    convs += [one_turn(f"How many letters are in the word '{w}'?", f"{OPENER} The word '{w}' has {len(w)} letters.")
              for w in WORDS]
    convs += [one_turn(q, f"{OPENER} {a}") for q, a in FACTS]
    return convs


def build_examples(seed: int = SEED) -> list[dict]:
    """Every example, in a fixed shuffled order: ``{"messages": [...]}``."""
    rng = random.Random(seed)
    singles = identity(rng) + arithmetic(rng, 90) + general(rng)
    convs = list(singles)
    for _ in range(30):  # two-turn conversations: the habit holds on the second answer too
        first, second = rng.sample(singles, 2)
        convs.append(first + second)
    for conv in rng.sample(convs, 40):  # some with a system prompt of their own
        convs.append([{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}, *conv])
    rng.shuffle(convs)
    return [{"messages": conv} for conv in convs]


def render(examples: list[dict]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the shipped file is current")
    args = parser.parse_args(argv)
    text = render(build_examples())
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date; run python examples/make_demo_data.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(text.splitlines())} examples to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
