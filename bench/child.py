"""One tuner's training step in a process of its own, for peak-memory figures (measurements 4-6).

Children are forked from a ``forkserver`` that has imported torch, transformers, peft and swiftune
but computed nothing (so fork is safe and each child starts in well under a second). Each child
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) before it builds its model, so the
peak it reports (``VmHWM``) is its own: shared libraries plus its model, tuner and step.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

PRELOAD = ["bench.preload", "bench.common"]
#: Not a swiftune tuner: PEFT's own LoRA, as the reference.
PEFT_LORA = "peft-lora (PEFT)"
#: Appended to a tuner's name: trained through ``swiftune sft``'s loss (the LM head fused into it).
SFT_LOSS = ", sft's fused head loss"


def proc_status_bytes(field: str) -> int:
    """A ``/proc/self/status`` size in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def tensor_bytes(model: Any) -> int:
    """Bytes of the parameters and buffers, each storage counted once."""
    seen: dict[int, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def linear_weight_bytes(model: Any) -> tuple[int, int]:
    """(bytes the targeted linear weights take, bytes they would take in fp32).

    A bitsandbytes 4-bit weight counts its packed data and its quantization state (absmax, nested
    absmax, code); a float ``nn.Linear`` weight counts itself. ``lm_head`` (tied to the embedding
    in SmolLM2) and LoRA matrices are left out.
    """
    import torch
    from torch import nn

    held = fp32 = 0
    for name, m in model.named_modules():
        if "lora_" in name or name.endswith("lm_head"):
            continue
        w = getattr(m, "weight", None)
        qs = getattr(w, "quant_state", None)
        if qs is not None:
            extra = sum(t.numel() * t.element_size() for t in qs.as_dict(packed=True).values() if torch.is_tensor(t))
            held += w.numel() * w.element_size() + extra
            fp32 += math.prod(qs.shape) * 4
        elif type(m).__name__ == "Linear8bitLt":
            held += w.numel() * w.element_size() + sum(b.numel() * b.element_size() for b in m.buffers())
            fp32 += w.numel() * 4
        elif isinstance(m, nn.Linear):
            held += w.numel() * w.element_size()
            fp32 += w.numel() * 4
    return held, fp32


def tuner_config(name: str, shape: Any) -> dict[str, Any]:
    from .common import lora_dict

    if name == "lora":
        return lora_dict(shape)
    if name == "qlora":
        return {"tuner": "qlora", "r": shape.r, "lora_alpha": shape.alpha}
    return {"tuner": name}


def prepare(name: str, shape: Any) -> Any:
    from .common import base_model

    model = base_model(shape)
    if name == PEFT_LORA:
        import peft

        cfg = peft.LoraConfig(r=shape.r, lora_alpha=shape.alpha, target_modules="all-linear", task_type="CAUSAL_LM")
        return peft.get_peft_model(model, cfg)
    from swiftune import Swift, registries

    name = name.removesuffix(SFT_LOSS)
    if name not in registries.tuners.names():
        raise LookupError("not available (no tuner of that name is registered)")
    return Swift.prepare(model, tuner_config(name, shape))


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Build, prepare and train ``spec['tuner']`` for ``spec['steps']`` steps; sizes in bytes."""
    import torch

    from .common import Shape, fused_head, input_ids, train_step

    torch.set_num_threads(spec["threads"])
    shape = Shape(**spec["shape"])
    reset_peak()
    rss_start = proc_status_bytes("VmRSS")
    model = prepare(spec["tuner"], shape)
    model.train()
    out: dict[str, Any] = {
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total": sum(p.numel() for p in model.parameters()),
        "model_bytes": tensor_bytes(model),
        "rss_start": rss_start,
        "rss_loaded": proc_status_bytes("VmRSS"),
    }
    out["linear_bytes"], out["linear_fp32_bytes"] = linear_weight_bytes(model)
    if out["trainable"] == 0:
        raise RuntimeError("the tuner left no parameter trainable on this model")
    ids = input_ids(shape, seq=spec["seq"], batch=spec["batch"])
    step = train_step(model, ids, head_loss=fused_head(model) if spec["tuner"].endswith(SFT_LOSS) else None)
    reset_peak()
    cpu = []
    for _ in range(spec["steps"]):
        c0 = time.process_time()
        loss = step()
        cpu.append(time.process_time() - c0)
    out.update(step_cpu=cpu, peak=proc_status_bytes("VmHWM"), loss=loss)
    if not math.isfinite(loss):
        raise RuntimeError(f"loss is {loss}")
    return out


def _entry(spec: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(measure(spec))
    except Exception as exc:  # noqa: BLE001 - reported in the table, the suite goes on
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        conn.send({"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200] + where})
    finally:
        conn.close()


_CONTEXT: Any = None


def context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def run_child(tuner: str, settings: Any, seq: int, batch: int, steps: int = 1, timeout: float = 600) -> dict[str, Any]:
    """``measure`` in a fresh process; ``{"error": ...}`` if it failed or died."""
    ctx = context()
    parent, child = ctx.Pipe(duplex=False)
    spec = {"tuner": tuner, "shape": asdict(settings.shape), "seq": seq, "batch": batch, "steps": steps,
            "threads": settings.threads}
    proc = ctx.Process(target=_entry, args=(spec, child), daemon=True)
    proc.start()
    child.close()
    try:
        result = parent.recv() if parent.poll(timeout) else {"error": f"timed out after {timeout:.0f} s"}
    except EOFError:
        result = {"error": "the process died (out of memory?)"}
    proc.join(10)
    if proc.is_alive():
        proc.kill()
    if "error" not in result and proc.exitcode not in (0, None):
        result = {"error": f"exit code {proc.exitcode}"}
    print(f"  child {tuner} seq {seq} batch {batch}: " + (result.get("error") or f"peak {result['peak'] / 2**20:.0f} MiB"),
          flush=True)
    return result
