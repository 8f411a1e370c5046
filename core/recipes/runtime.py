"""Where a run executes: precision choice, process rank, memory, quiet library logging."""

from __future__ import annotations

import os
from typing import Literal

import torch

Resolved = Literal["fp32", "bf16", "fp16"]


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU computes bf16 matmuls natively (autocast is then a speed-up)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except Exception:  # noqa: BLE001 - a missing/odd probe just means "no"
            continue
    return False


def resolve_precision(precision: str, device: str | None = None) -> Resolved:
    """``auto``: bf16 on GPUs that support it (fp16 on older ones), bf16 autocast on CPUs with
    native bf16, fp32 otherwise. An explicit choice is kept as is."""
    if precision != "auto":
        return precision  # type: ignore[return-value]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def torch_dtype(precision: Resolved) -> torch.dtype:
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def rank() -> int:
    """Global process rank under torchrun / accelerate (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0


def memory_mb() -> float:
    """Peak accelerator memory on GPU, resident memory of this process on CPU (MiB)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_libraries() -> None:
    """Keep the console to swiftune's summary and the progress bar (warnings still show)."""
    import logging

    import transformers

    transformers.logging.set_verbosity_warning()
    # bitsandbytes warns at import on CPUs with AVX512-BF16 that an optional kernel package is missing.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
