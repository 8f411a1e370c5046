"""Serving throughput: ``swiftune deploy`` at 1, 4 and 8 concurrent clients vs the same prompts one
by one through ``swiftune infer``'s generator (batch size 1), on the embedded model.

    python -m bench.serve --write docs/benchmarks-serve.md          # the embedded SmolLM2-135M
    python -m bench.serve --quick                                    # a tiny random model: checks the code

Every client sends its share of the prompts, greedy, a fixed answer length (``min_tokens`` =
``max_tokens``, so every contender generates the same number of tokens); tokens/s counts generated
tokens over the wall time of the whole round; latency is per request, from send to full answer.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import os
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "Write one sentence about the sea.", "What is the capital of Italy?", "Give me a tip for learning Python.",
    "Describe a cat in a few words.", "Why is the sky blue?", "Name three fruits.", "What is 12 times 3?",
    "Tell me a fun fact about space.", "How do plants make food?", "Suggest a name for a dog.",
    "What is a prime number?", "Say something kind.", "What does a compiler do?", "Describe autumn.",
    "What is the boiling point of water?", "Recommend a short book.",
]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="model to serve (default: the embedded one)")
    p.add_argument("--quick", action="store_true", help="a tiny random model and few tokens: checks the code")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens generated per answer")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8], help="concurrent clients per round")
    p.add_argument("--write", type=Path, help="markdown page to write")
    return p.parse_args(argv)


def sequential(generator, prompts: list[list[int]], new_tokens: int) -> tuple[float, list[float]]:
    from swiftune.recipes.arguments import GenerationArguments

    settings = GenerationArguments(max_new_tokens=new_tokens)
    kwargs = generator.generation_kwargs(settings)
    kwargs.update(min_new_tokens=new_tokens)
    latencies = []
    start = time.perf_counter()
    for prompt in prompts:
        t0 = time.perf_counter()
        import torch

        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = generator.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        assert out.shape[1] == ids.shape[1] + new_tokens
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - start, latencies


def concurrent(url: str, model: str, questions: list[str], clients: int, new_tokens: int) -> tuple[float, list[float], int]:
    import httpx

    def one(question: str) -> tuple[float, int]:
        t0 = time.perf_counter()
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
            "model": model, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": new_tokens, "min_tokens": new_tokens})
        reply.raise_for_status()
        return time.perf_counter() - t0, reply.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    with futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, questions))
    return time.perf_counter() - start, [r[0] for r in results], sum(r[1] for r in results)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.stdout.reconfigure(line_buffering=True)
    import torch

    from swiftune.recipes.arguments import DeployArguments
    from swiftune.recipes.deploy import build_served

    torch.set_num_threads(os.cpu_count() or 1)
    model = args.model
    new_tokens = 4 if args.quick else args.new_tokens
    if args.quick:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from cli_fixtures import save_tiny_model

        model = str(save_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    served = build_served(DeployArguments(model=model, served_model_name=Path(model).name or model))  # the prompts and the baseline
    gen = served.engine.generator
    questions = PROMPTS[:8] if args.quick else PROMPTS
    prompts = [gen.encode([{"role": "user", "content": q}]) for q in questions]
    # Warm up, then the one-by-one baseline (infer's path: one prompt per generate call).
    sequential(gen, prompts[:1], new_tokens)
    seq_wall, seq_lat = sequential(gen, prompts, new_tokens)
    seq_rate = len(prompts) * new_tokens / seq_wall

    # The server in its own process, as deployed (clients in this one would share its GIL).
    port = _free_port()
    server = _start_server(model, port)
    url = f"http://127.0.0.1:{port}"
    rows = [["infer, one by one", "1", f"{seq_rate:.1f}", "1.00", f"{percentile(seq_lat, .5):.2f}", f"{percentile(seq_lat, .95):.2f}"]]
    try:
        concurrent(url, served.base_name, questions[:2], 2, new_tokens)  # warm-up
        for clients in args.clients:
            wall, lat, tokens = concurrent(url, served.base_name, questions, clients, new_tokens)
            assert tokens == len(questions) * new_tokens, (tokens, len(questions) * new_tokens)
            rate = tokens / wall
            rows.append([f"deploy, {clients} clients", str(clients), f"{rate:.1f}", f"{rate / seq_rate:.2f}",
                         f"{percentile(lat, .5):.2f}", f"{percentile(lat, .95):.2f}"])
            print(rows[-1])
    finally:
        server.terminate()
        server.wait(60)
    page = render(rows, model, len(questions), new_tokens, args)
    print(page)
    if args.write:
        args.write.write_text(page)
    return 0


def render(rows: list[list[str]], model: str, n: int, new_tokens: int, args: argparse.Namespace) -> str:
    from .report import machine, table

    command = "python -m bench.serve" + (" --quick" if args.quick else "") + (f" --write {args.write}" if args.write else "")
    lines = [
        "# Serving benchmark: `swiftune deploy` vs one by one",
        "",
        f"{n} chat prompts to `{model}`, greedy, exactly {new_tokens} new tokens each; the server batches up to 8 "
        "requests per `generate` call. Tokens/s = generated tokens / wall time of the round; latency per request "
        "(send to full answer), in seconds. Target: >= 3x the one-by-one rate at 8 clients.",
        "",
        *table(["contender", "clients", "tokens / s", "vs one by one", "p50 latency", "p95 latency"], rows),
        "",
        f"Command: `{command}`. Machine: {machine()}.",
        "",
    ]
    return "\n".join(lines)


def _start_server(model: str, port: int):
    """``swiftune deploy`` in a subprocess, returned once it answers /health."""
    import subprocess

    import httpx

    cmd = [sys.executable, "-m", "swiftune", "deploy", "--model", model, "--served_model_name", Path(model).name or model,
           "--port", str(port), "--max_batch_size", "8", "--max_queue", "256", "--log_level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"swiftune deploy exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("swiftune deploy did not start within 300 s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    raise SystemExit(main())
