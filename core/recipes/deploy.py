"""``swiftune deploy``: serve a base model and its adapters over the OpenAI HTTP API.

The base model is loaded once; every adapter is put on it under its own name, and the request's
``model`` field picks one (or the base alone). The server is uvicorn: on SIGTERM / Ctrl-C it stops
accepting connections, finishes the requests in flight, then stops the engine.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError
from .arguments import DeployArguments

#: Generation engines: transformers always; vLLM where it is installed (GPU machines).
BACKENDS = ("transformers", "vllm")


def check_backend(backend: str) -> None:
    """transformers always; vllm where installed; any other engine: an error naming what is here."""
    from .aliases import backends_here, installed_backends

    if backend in ("transformers", "pt") or (backend == "vllm" and "vllm" in installed_backends()):
        return
    have = backends_here()
    hint = " (pip install vllm, on a GPU machine)" if backend == "vllm" else ""
    raise ConfigError(f"--infer_backend {backend}: not available{hint}; supported: {', '.join(BACKENDS)} "
                      f"(vllm only where installed); {have}")


def build_served(args: DeployArguments):
    """Load the model and adapters and wrap them in the engine (no server started)."""
    from ..serve.app import Served
    from ..serve.engine import Engine
    from .adapter_choice import adapter_specs, load_named
    from .generation import Generator

    check_backend(args.infer_backend)
    if args.infer_backend == "vllm":
        return _served_by_vllm(args, adapter_specs(args.adapters))
    loaded = load_named(args.adapters, model=args.model, template=args.template, precision=args.precision,
                        trust_remote_code=args.allows_remote_code())
    built = loaded.built
    base_name = args.served_model_name or Path(built.base.rstrip("/")).name or built.base
    if base_name in loaded.names:
        raise ConfigError(f"--adapters: '{base_name}' is the base model's name; give the adapter another name")
    routes: dict[str, str | None] = {base_name: None, **loaded.names}
    config = getattr(built.model, "config", None)
    limit = args.max_model_len or int(getattr(config, "max_position_embeddings", 0) or 2048)
    generator = Generator(model=built.model, tokenizer=built.tokenizer, template=built.template, max_length=limit)
    engine = Engine(generator, max_batch_size=args.max_batch_size, max_queue=args.max_queue,
                    batch_wait_s=args.batch_wait_ms / 1000)
    return Served(engine=engine, base_name=base_name, routes=routes, api_key=args.api_key, max_model_len=limit,
                  default_max_tokens=args.max_new_tokens, default_temperature=args.temperature,
                  default_top_p=args.top_p, system=args.system, aliases={built.base: base_name})


def _served_by_vllm(args: DeployArguments, pairs: list[tuple[str, str]]):
    from ..serve.app import Served
    from ..loading.remote_code import trust_remote_code
    from ..serve.vllm_engine import build_vllm_engine

    if not args.model:
        raise ConfigError("--infer_backend vllm: give --model (a local folder or hub id vLLM can load)")
    engine, limit = build_vllm_engine(args.model, pairs, template=args.template, trust_remote_code=trust_remote_code(args.allows_remote_code()),
                                      max_model_len=args.max_model_len, max_batch_size=args.max_batch_size,
                                      max_queue=args.max_queue)
    base_name = args.served_model_name or Path(args.model.rstrip("/")).name
    routes: dict[str, str | None] = {base_name: None, **{name: name for name, _ in pairs}}
    return Served(engine=engine, base_name=base_name, routes=routes, api_key=args.api_key, max_model_len=limit,
                  default_max_tokens=args.max_new_tokens, default_temperature=args.temperature,
                  default_top_p=args.top_p, system=args.system, aliases={args.model: base_name})


def run_deploy(args: DeployArguments) -> None:
    """Serve until SIGTERM / Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("swiftune deploy needs FastAPI and uvicorn: pip install 'swiftune[deploy]'") from None
    from ..serve.app import create_app
    from .runtime import quiet_libraries

    quiet_libraries()
    served = build_served(args)
    names = ", ".join(f"{n} ({'base' if a is None else 'adapter'})" for n, a in served.routes.items())
    print(f"serving {names} on http://{args.host}:{args.port}/v1", flush=True)
    config = uvicorn.Config(create_app(served), host=args.host, port=args.port, log_level=args.log_level)
    _server_class()(config).run()


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM / SIGINT after the graceful stop ends the process with
        exit code 0 (uvicorn re-raises the signal, which reads as a crash to process managers)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
