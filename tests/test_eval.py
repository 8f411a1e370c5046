"""``swiftune eval``: answers scored against references, multiple choice by log-likelihood,
perplexity, the base beside each adapter, results JSON and the CLI table."""

from __future__ import annotations

import json
import math

import pytest
import torch

import swiftune
from swiftune.errors import ConfigError
from swiftune.evaluation import likelihood, metrics

from cli_fixtures import PAIRS, ensure_model, ensure_trained, read_jsonl, run_cli


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "cli-assets"
    return {"model": ensure_model(root), "trained": ensure_trained(root)}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_metrics() -> None:
    assert metrics.exact_match("  Paris. ", "paris") and not metrics.exact_match("Paris is it", "Paris")
    assert metrics.contains("I think Paris is it", "paris") and not metrics.contains("Lyon", "Paris")
    number = __import__("re").compile(r"(-?\d+)")
    assert metrics.exact_match("3 + 4 = 7, so the answer is 7", "#### 7", number)
    assert not metrics.exact_match("the answer is 8", "7", number)


def test_likelihood_matches_a_direct_computation() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    prompt, conts = [1, 5, 7], [[9], [11, 12, 13]]
    got = likelihood.continuation_logprobs(model, prompt, conts, max_length=64)
    for cont, (score, n) in zip(conts, got):
        ids = torch.tensor([prompt + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), -1)
        want = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(cont))
        assert n == len(cont) and score == pytest.approx(want, abs=1e-5)
    nll, n = likelihood.negative_log_likelihood(model, [1, 5, 7, 9, 11], max_length=64)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 5, 7, 9]])).logits[0]
    assert n == 4 and nll == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.tensor([5, 7, 9, 11]), reduction="sum")), rel=1e-5)
    # Windows: the same NLL sum in pieces covers every predicted token once.
    assert likelihood.negative_log_likelihood(model, list(range(1, 20)), max_length=5)[1] == 18


def test_adapter_beats_base_on_its_answers(assets, tmp_path) -> None:
    qa = write(tmp_path / "qa.jsonl", [{"query": q, "response": a} for q, a in PAIRS])
    mc = write(tmp_path / "mc.jsonl", [
        {"question": q, "choices": [a, "no idea at all", "blue"] if i % 2 else ["blue", a, "no idea at all"],
         "answer": 0 if i % 2 else "B"} for i, (q, a) in enumerate(PAIRS)])
    text = write(tmp_path / "text.jsonl", [{"text": "Hello how are you ? I am fine thanks"}] * 3)
    result_path = tmp_path / "out" / "results.json"
    results = swiftune.evaluate(adapters=[f"memo={assets['trained']}"], eval_dataset=[qa, f"{mc}#6", text],
                                max_new_tokens=12, result_path=str(result_path))
    qa_scores = results["datasets"][qa]["scores"]
    assert qa_scores["memo"]["exact_match"] == 1.0 and qa_scores["base"]["exact_match"] < 0.5
    mc_entry = results["datasets"][f"{mc}#6"]
    assert mc_entry["kind"] == "multiple_choice" and mc_entry["n"] == 6
    assert mc_entry["scores"]["memo"]["accuracy"] > mc_entry["scores"]["base"]["accuracy"]
    ppl = results["datasets"][text]["scores"]
    assert math.isfinite(ppl["base"]["perplexity"]) and ppl["memo"]["perplexity"] != ppl["base"]["perplexity"]
    assert json.loads(result_path.read_text())["datasets"][qa]["scores"] == qa_scores
    samples = read_jsonl(result_path.with_suffix(".samples.jsonl"))
    assert {s["model"] for s in samples} == {"base", "memo"}
    assert [s["prediction"] for s in samples if s["model"] == "memo" and s["dataset"] == qa] == [a for _, a in PAIRS]


def test_cli_table_limit_and_errors(assets, tmp_path) -> None:
    qa = write(tmp_path / "qa.jsonl", [{"query": q, "response": a} for q, a in PAIRS])
    proc = run_cli("eval", "--adapters", str(assets["trained"]), "--eval_dataset", qa, "--eval_limit", "3",
                   "--max_new_tokens", "8", "--result_path", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "exact_match" in proc.stdout and "(messages, 3 examples)" in proc.stdout
    assert "trained-run" in proc.stdout  # the adapter, named after its run folder, beside the base
    with pytest.raises(ConfigError, match="eval_dataset"):
        swiftune.evaluate(model=str(assets["model"]))
    bad = write(tmp_path / "bad.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": "Z"}])
    with pytest.raises(Exception, match="answer"):
        swiftune.evaluate(model=str(assets["model"]), eval_dataset=[bad], result_path=str(tmp_path / "x.json"))
    with pytest.raises(ConfigError, match="lm-evaluation-harness is not installed"):
        swiftune.evaluate(model=str(assets["model"]), eval_backend="lm_eval", tasks=["arc_easy"])


def test_cut_prompts_are_reported_in_eval_and_chat(assets, tmp_path, caplog) -> None:
    import io

    from swiftune.recipes.arguments import InferArguments
    from swiftune.recipes.chat import Chat
    from swiftune.recipes.infer import build_generator

    long_q = " ".join(["Hello"] * 60) + " What is 2 + 3 ?"
    qa = write(tmp_path / "long.jsonl", [{"query": long_q, "response": "five"}, {"query": "Hello", "response": "Hi there !"}])
    with caplog.at_level("WARNING", logger="swiftune.eval"):
        swiftune.evaluate(model=str(assets["model"]), eval_dataset=[qa], max_length=24, max_new_tokens=4,
                          result_path=str(tmp_path / "r.json"))
    assert "1 of 2 prompts were cut to --max_length 24" in caplog.text
    out = io.StringIO()
    chat = Chat(build_generator(InferArguments(model=str(assets["model"]), max_length=24, max_new_tokens=3,
                                               stream=False)), InferArguments(max_new_tokens=3, stream=False), out)
    chat.ask("Hello")
    assert "dropped" not in out.getvalue()
    chat.ask(long_q)
    assert "tokens of the conversation's start were dropped to fit --max-length 24" in out.getvalue()
