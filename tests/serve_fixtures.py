"""A live ``swiftune deploy`` server for tests: the tiny model, a memorising adapter and a random one,
served by uvicorn on 127.0.0.1 in a background thread of the test process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from cli_fixtures import ensure_model, ensure_trained

API_KEY = "test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_adapter(root: Path) -> Path:
    """A LoRA adapter with random B (not identity at init): its answers differ from the base's."""
    folder = root / "random-adapter"
    if not (folder / "adapter_config.json").is_file():
        from transformers import AutoModelForCausalLM

        from swiftune import Swift

        model = AutoModelForCausalLM.from_pretrained(ensure_model(root))
        tuned = Swift.prepare(model, {"tuner": "lora", "r": 4, "lora_alpha": 64, "target_modules": "all-linear"})
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1)
            for name, p in tuned.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        tuned.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def live_server(args: Any) -> Iterator[tuple[str, Any]]:
    """(base URL, Served) of a server running ``args`` (a DeployArguments) until the block ends."""
    import uvicorn

    from swiftune.recipes.deploy import build_served
    from swiftune.serve.app import create_app

    served = build_served(args)
    config = uvicorn.Config(create_app(served), host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{args.port}", served
    finally:
        server.should_exit = True
        thread.join(30)


def serve_assets(root: Path) -> dict[str, Path]:
    return {"model": ensure_model(root), "memorised": ensure_trained(root), "random": random_adapter(root)}
