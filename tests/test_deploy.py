"""``swiftune deploy``: the OpenAI wire format driven by the real ``openai`` client and plain HTTP,
adapters chosen per request, batching without cross-talk, bad requests, API key, shutdown."""

from __future__ import annotations

import concurrent.futures as futures
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from swiftune.errors import ConfigError
from swiftune.recipes.arguments import DeployArguments

from cli_fixtures import PAIRS, SWIFTUNE_BIN
from serve_fixtures import API_KEY, free_port, live_server, serve_assets

openai = pytest.importorskip("openai")
ANSWERS = dict(PAIRS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    assets = serve_assets(tmp_path_factory.getbasetemp() / "cli-assets")
    args = DeployArguments(model=str(assets["model"]), served_model_name="tiny",
                           adapters=[f"memo={assets['memorised']}", f"noise={assets['random']}"],
                           port=free_port(), api_key=API_KEY, max_new_tokens=12, max_queue=40)
    with live_server(args) as (url, served):
        yield url, served


def client(url: str, key: str = API_KEY):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def ask(url: str, model: str, question: str, **kwargs) -> str:
    reply = client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": question}], **kwargs)
    return reply.choices[0].message.content


def test_models_lists_base_and_adapters(server) -> None:
    url, _ = server
    ids = [m.id for m in client(url).models.list().data]
    assert ids == ["tiny", "memo", "noise"]


def test_request_model_picks_the_adapter(server) -> None:
    url, _ = server
    reply = client(url).chat.completions.create(model="memo", messages=[{"role": "user", "content": "What is 2 + 3 ?"}],
                                                temperature=0)
    assert reply.choices[0].message.content == "five"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    base = ask(url, "tiny", "What is 2 + 3 ?", temperature=0)
    noise = ask(url, "noise", "What is 2 + 3 ?", temperature=0)
    assert len({"five", base, noise}) == 3  # three different models answered


def test_streamed_chat_equals_the_plain_answer(server) -> None:
    url, _ = server
    stream = client(url).chat.completions.create(model="memo", stream=True, temperature=0,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Who made you ?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWERS["Who made you ?"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 5
    # Raw SSE: data lines ending with [DONE].
    with httpx.stream("POST", f"{url}/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": "tiny", "prompt": "Hello", "max_tokens": 4, "stream": True}, timeout=60) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.status_code == 200 and lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    plain = client(url).completions.create(model="tiny", prompt="Hello", max_tokens=4, temperature=0)
    assert "".join(c["choices"][0]["text"] for c in chunks) == plain.choices[0].text


def test_max_tokens_stop_and_seed(server) -> None:
    url, _ = server
    c = client(url)
    full = ask(url, "memo", "Who made you ?", temperature=0)
    short = c.chat.completions.create(model="memo", messages=[{"role": "user", "content": "Who made you ?"}],
                                      max_tokens=2, temperature=0)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
    assert full.startswith(short.choices[0].message.content)
    cut = ask(url, "memo", "Who made you ?", temperature=0, stop=["made"])
    assert cut == full.split("made")[0].strip() and cut
    sampled = [ask(url, "noise", "Hello", temperature=1.5, seed=7) for _ in range(2)]
    assert sampled[0] == sampled[1]  # the seed alone decides a seeded sample
    text = c.completions.create(model="memo", prompt="Hello", max_tokens=3, temperature=0)
    assert text.object == "text_completion" and text.usage.completion_tokens <= 3


def test_concurrent_answers_equal_sequential_ones(server) -> None:
    """16 clients at once over three models: each greedy answer is exactly its answer alone."""
    url, served = server
    questions = [q for q, _ in PAIRS]
    jobs = [(model, questions[i % len(questions)]) for i, model in enumerate(["memo", "tiny", "noise", "memo"] * 4)]
    alone = {job: ask(url, *job, temperature=0) for job in set(jobs)}
    before = served.engine.largest_batch
    with futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda job: ask(url, *job, temperature=0), jobs))
    assert together == [alone[job] for job in jobs]
    assert served.engine.largest_batch > max(before, 1)  # requests really shared batches
    assert alone[("memo", "What is 3 + 4 ?")] == "seven"


def test_load_none_lost(server) -> None:
    """48 requests from 24 clients (more than a batch, some queued): every answer complete and right."""
    url, _ = server
    jobs = [PAIRS[i % len(PAIRS)] for i in range(48)]

    def call(pair):
        reply = client(url).chat.completions.create(model="memo", messages=[{"role": "user", "content": pair[0]}],
                                                    temperature=0, max_tokens=12)
        return reply.choices[0].message.content, reply.choices[0].finish_reason

    with futures.ThreadPoolExecutor(24) as pool:
        got = list(pool.map(call, jobs))
    assert got == [(answer, "stop") for _, answer in jobs]


def test_min_tokens_and_usage_counts(server) -> None:
    url, _ = server
    reply = client(url).completions.create(model="noise", prompt="Hello", max_tokens=9, temperature=0,
                                           extra_body={"min_tokens": 9})
    assert reply.usage.completion_tokens == 9 and reply.choices[0].finish_reason == "length"


def test_bad_requests_get_openai_errors(server) -> None:
    url, _ = server
    auth = {"Authorization": f"Bearer {API_KEY}"}
    chat = f"{url}/v1/chat/completions"

    def post(body, headers=auth, raw=None):
        r = httpx.post(chat, headers={**headers, "Content-Type": "application/json"},
                       content=raw if raw is not None else json.dumps(body), timeout=60)
        return r.status_code, r.json()

    msgs = [{"role": "user", "content": "Hello"}]
    cases = [
        (post(None, raw=b"{not json"), 400, "malformed JSON"),
        (post({"model": "nope", "messages": msgs}), 404, "nope"),
        (post({"model": "memo"}), 400, "messages"),
        (post({"model": "memo", "messages": "hi"}), 400, "messages"),
        (post({"model": "memo", "messages": msgs, "max_tokens": "many"}), 400, "max_tokens"),
        (post({"model": "memo", "messages": msgs, "temperature": 9}), 400, "temperature"),
        (post({"model": "memo", "messages": msgs, "max_tokens": 100000}), 400, "max_tokens"),
        (post({"model": "memo", "messages": [{"role": "user", "content": "Hello " * 400}]}), 400, "tokens"),
        (post({"model": "memo", "messages": msgs}, headers={}), 401, "API key"),
        (post({"model": "memo", "messages": msgs}, headers={"Authorization": "Bearer wrong"}), 401, "API key"),
    ]
    for (status, body), want_status, word in cases:
        assert status == want_status, body
        assert set(body["error"]) == {"message", "type", "param", "code"} and word in body["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        client(url, key="wrong").models.list()
    assert ask(url, "memo", "Hello", temperature=0) == ANSWERS["Hello"]  # still serving


def test_full_queue_answers_429(server) -> None:
    url, served = server
    engine = served.engine
    old = engine.max_queue
    engine.max_queue = 0
    try:
        with pytest.raises(openai.RateLimitError):
            ask(url, "memo", "Hello")
    finally:
        engine.max_queue = old
    assert ask(url, "memo", "Hello", temperature=0) == ANSWERS["Hello"]


def test_a_client_that_leaves_frees_its_row(server) -> None:
    url, served = server
    before = served.engine.rows_cancelled
    with httpx.stream("POST", f"{url}/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": "noise", "prompt": "Hello", "max_tokens": 240, "min_tokens": 240, "stream": True},
                      timeout=60) as r:
        next(r.iter_lines())  # the first chunk arrived; now hang up
    deadline = time.monotonic() + 30
    while served.engine.rows_cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.engine.rows_cancelled == before + 1  # its row stopped before its 240 tokens
    assert ask(url, "memo", "Hello", temperature=0) == ANSWERS["Hello"]


def test_adapter_specs_and_backends() -> None:
    from swiftune.recipes.adapter_choice import adapter_specs
    from swiftune.recipes.deploy import check_backend

    assert adapter_specs(["a=x/y", "runs/chat/final"]) == [("a", "x/y"), ("chat", "runs/chat/final")]
    with pytest.raises(ConfigError, match="given twice"):
        adapter_specs(["a=x", "a=y"])
    check_backend("transformers")
    with pytest.raises(ConfigError, match="vllm: not available.*supported: transformers, vllm.*none of vllm"):
        check_backend("vllm")
    with pytest.raises(ConfigError, match="sglang: not available"):
        check_backend("sglang")


@pytest.mark.slow
def test_cli_server_finishes_in_flight_requests_on_sigterm(tmp_path_factory) -> None:
    assets = serve_assets(tmp_path_factory.getbasetemp() / "cli-assets")
    port = free_port()
    cmd = [str(SWIFTUNE_BIN)] if SWIFTUNE_BIN.exists() else [sys.executable, "-m", "swiftune"]
    proc = subprocess.Popen(cmd + ["deploy", "--model", str(assets["model"]), "--adapters", f"memo={assets['memorised']}",
                                   "--port", str(port), "--log_level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
            time.sleep(0.2)
        with futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/completions", timeout=60,
                                  json={"model": "memo", "prompt": "Hello", "max_tokens": 150, "temperature": 1.0,
                                        "stop": None})
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            reply = pending.result()
        assert reply.status_code == 200 and reply.json()["choices"][0]["finish_reason"] in ("stop", "length")
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
