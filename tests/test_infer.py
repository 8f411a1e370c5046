"""``swiftune infer``: batch generation (left padding, any row format, --merge) and the interactive
chat driven through a pseudo-terminal, on a tiny adapter that has memorised a few answers."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import swiftune
from swiftune.errors import ConfigError

from cli_fixtures import PAIRS, ensure_model, ensure_trained, read_jsonl, run_cli

ANSWERS = dict(PAIRS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return ensure_trained(tmp_path_factory.getbasetemp() / "cli-assets")


def prompt_rows() -> list[dict]:
    """Prompts in several formats and lengths, some with a reference answer, some without."""
    return [
        {"messages": [{"role": "user", "content": "Hello"}]},
        {"query": "What is the capital of France ?"},
        {"instruction": "How are you ?"},
        {"messages": [{"role": "user", "content": "What is your name ?"}, {"role": "assistant", "content": "ref"}]},
        {"query": "Who made you ?", "response": "ref"},
        {"messages": [{"role": "user", "content": "What is 3 + 4 ?"}], "id": 7},
    ]


def expected(row: dict) -> str:
    question = row.get("query") or row.get("instruction") or row["messages"][0]["content"]
    return ANSWERS[question]


@pytest.mark.slow
def test_batch_generation_matches_memorised_answers(trained, tmp_path) -> None:
    rows = prompt_rows()
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "answers.jsonl"
    # Four prompts of different lengths share a left-padded batch.
    proc = run_cli("infer", "--adapter", str(trained), "--input", str(src), "--output", str(out),
                   "--batch-size", "4", "--max-new-tokens", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = read_jsonl(out)
    kept = [{("response" if k == "reference" else k): v for k, v in g.items() if k != "response"} for g in got]
    assert kept == rows  # each row kept as is (an input "response" is kept as "reference")
    assert got[4]["reference"] == "ref"
    assert [g["response"] for g in got] == [expected(r) for r in rows]
    assert not list(tmp_path.glob(".answers*")), "temporary output left behind"

    # Merged weights, one prompt at a time (no padding at all): the same answers.
    merged = swiftune.infer(adapter=str(trained / "final"), merge=True, input=str(src),
                            output=str(tmp_path / "merged.jsonl"), batch_size=1, max_new_tokens=10)
    assert [g["response"] for g in merged] == [g["response"] for g in got]


def test_base_model_alone_and_seeded_sampling(trained, tmp_path) -> None:
    model = ensure_model(trained.parent)
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows()[:3]))
    common = dict(input=str(src), max_new_tokens=6, do_sample=True, temperature=1.5, batch_size=3)
    first = swiftune.infer(model=str(model), output=str(tmp_path / "a.jsonl"), seed=3, **common)
    again = swiftune.infer(model=str(model), output=str(tmp_path / "b.jsonl"), seed=3, **common)
    assert len(first) == 3 and [r["response"] for r in first] == [r["response"] for r in again]
    tuned = swiftune.infer(adapter=str(trained), output=str(tmp_path / "c.jsonl"), seed=3, **common)
    assert [r["response"] for r in tuned] != [r["response"] for r in first]  # the adapter is in use
    # --merge folds the adapter into plain weights: no tuner module is left in the model.
    from swiftune.recipes.arguments import InferArguments
    from swiftune.recipes.infer import build_generator

    merged = build_generator(InferArguments(adapter=[str(trained)], merge=True)).model
    assert type(merged).__name__ == "LlamaForCausalLM" and not any("lora" in n for n, _ in merged.named_parameters())
    with pytest.raises(ConfigError, match="--merge: there is no adapter"):
        build_generator(InferArguments(model=str(model), merge=True))
    with pytest.raises(ConfigError, match="--output: batch mode needs both"):
        swiftune.infer(model=str(model), input=str(src))
    with pytest.raises(ConfigError, match="--adapter: .*no adapter_config.json"):
        swiftune.infer(adapter=str(tmp_path), input=str(src), output=str(tmp_path / "d.jsonl"))


class Terminal:
    """A command on a pseudo-terminal: write lines, read until a marker appears."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.fd = master
        self.buffer = b""

    def expect(self, marker: str, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while marker.encode() not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise AssertionError(f"timed out waiting for {marker!r}; got {self.buffer.decode(errors='replace')!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {marker!r}; got {self.buffer.decode(errors='replace')!r}")
            self.buffer += chunk
        i = self.buffer.index(marker.encode()) + len(marker)
        text, self.buffer = self.buffer[:i], self.buffer[i:]
        return text.decode(errors="replace").replace("\r\n", "\n")

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def ask(self, line: str) -> str:
        """Send a line; return what was printed before the next prompt (minus the echo)."""
        self.send(line)
        shown = self.expect("<<< ")
        return shown[len(line) + 1 : -len("<<< ")].strip()


@pytest.mark.slow
def test_chat_through_a_pseudo_terminal(trained) -> None:
    term = Terminal([sys.executable, "-m", "swiftune", "infer", "--adapter", str(trained), "--max-new-tokens", "10"])
    try:
        banner = term.expect("<<< ")
        assert "/exit" in banner and "/system" in banner
        # The same follow-up question gets the answer that fits the earlier turns: history is used.
        assert term.ask("Tell me a joke") == ">>> No"
        assert term.ask("Why ?") == ">>> Because no one is here"
        assert term.ask("/history") == (
            "[user: Tell me a joke | assistant: No | user: Why ? | assistant: Because no one is here]"
        )
        assert term.ask("/clear") == "[history cleared]"
        assert term.ask("/history") == "[no history]"
        assert term.ask("Hello") == ">>> Hi there !"
        assert term.ask("Why ?") == ">>> Because I am fine"
        assert term.ask("/clear") == "[history cleared]"
        # A line ending with a backslash continues on the next line.
        term.send("What is the capital \\")
        term.expect("... ")
        assert term.ask("of France ?") == ">>> Paris"
        # A /multi block ends with /end.
        term.send("/multi")
        term.expect("... ")
        term.send("What is 2 + 3")
        term.expect("... ")
        term.send("?")
        term.expect("... ")
        # The block is one message (its lines joined): whether the tiny model answers the unseen
        # two-line spelling with "five" depends on the training trajectory, so the history is checked.
        assert term.ask("/end").startswith(">>> ")
        assert "| user: What is 2 + 3\n? | assistant: " in term.ask("/history")
        assert term.ask("/system be brief") == "[system prompt set; history cleared]"
        assert term.ask("/history") == "[no history]"
        assert term.ask("/bogus").startswith("[unknown command /bogus")
        term.send("/exit")
        assert term.proc.wait(timeout=60) == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        os.close(term.fd)
