"""``swiftune infer``: chat with a model and its adapters, or generate for a whole file.

Batch mode (``--input`` / ``--output``) writes each input row plus its ``response`` (an input
``response`` column, a reference answer, is kept as ``reference``); prompts are
generated ``--batch-size`` at a time with left padding, in input order. A prompt cut to
``--max-length`` is a warning naming its line and the tokens dropped; a bad row is an error naming
its line, or skipped and reported with ``--skip-bad-rows``. Without ``--input`` it is an
interactive chat (see ``chat.py``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import naming_file
from .arguments import InferArguments
from .generation import Generator
from .vision import VisionGenerator, is_image_text, limit_pixels, row_images

log = logging.getLogger("swiftune.infer")
#: How many skipped rows a report lists one by one (the count is always exact).
SHOWN_BAD_ROWS = 20


def inference_dtype(precision: str) -> Any:
    """Weights for generation: fp32 on CPU unless asked otherwise; bf16 / fp16 on GPU (auto)."""
    import torch

    from .runtime import resolve_precision, torch_dtype

    if precision == "auto" and not torch.cuda.is_available():
        return torch.float32
    return torch_dtype(resolve_precision(precision))


def build_generator(args: InferArguments) -> Generator:
    import torch

    from .rebuild import rebuild

    if not args.adapter and not args.model:
        raise ConfigError("--adapter or --model: give an adapter (or sft output folder) or a base model")
    built = rebuild(args.adapter, model=args.model, template=args.template, dtype=inference_dtype(args.precision),
                    trust_remote_code=args.allows_remote_code())
    if args.system is None and built.run_args.get("system"):
        args.system = built.run_args["system"]  # the system prompt the adapter was trained with
    model = built.model
    if args.merge:
        if not built.adapters:
            raise ConfigError("--merge: there is no adapter to merge (give --adapter)")
        model = model.merge_and_unload()
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    if is_image_text(built.tokenizer):  # a vision-language model: prompts carry images (vision.py)
        limit_pixels(built.tokenizer, args.max_pixels or built.run_args.get("max_pixels"))
        return VisionGenerator(model, built.tokenizer, built.template, args.max_length, images=args.images)
    if args.images:
        raise ConfigError(f"--images: {built.base} is not a vision-language model (swiftune list models)")
    return Generator(model=model, tokenizer=built.tokenizer, template=built.template, max_length=args.max_length)


def run_infer(args: InferArguments) -> list[dict[str, Any]] | None:
    """Batch mode returns the written rows; chat mode returns None after the session ends."""
    from transformers import set_seed

    from .runtime import quiet_libraries

    quiet_libraries()
    if args.task == "text-to-image":
        from .diffusion import run_text_to_image_infer

        set_seed(args.seed)
        run_text_to_image_infer(args)
        return None
    if bool(args.input) != bool(args.output):
        missing = "--output" if args.input else "--input"
        raise ConfigError(f"{missing}: batch mode needs both --input and --output")
    set_seed(args.seed)
    generator = build_generator(args)
    if args.input:
        return run_batch(generator, args)
    from .chat import chat_loop

    chat_loop(generator, args)
    return None


def run_batch(generator: Generator, args: InferArguments) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    from . import bridge

    read = bridge.read_prompts(args.input, skip_bad_rows=args.skip_bad_rows)
    report_skipped(args.input, read.skipped)
    rows = list(zip(read.rows, read.where))
    if not rows:
        left = f" left after skipping {len(read.skipped)} bad row(s)" if read.skipped else ""
        raise ConfigError(f"--input: {args.input} has no rows{left}")
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    written: list[dict[str, Any]] = []
    cut = 0
    with naming_file(out_path, "write"), tmp.open("w") as fh, tqdm(total=len(rows), desc="generating", unit="row") as bar:
        for start in range(0, len(rows), args.batch_size):
            chunk = rows[start : start + args.batch_size]
            prompts = []
            for (row, msgs), where in chunk:
                images = {"images": row_images(row, args.input, where)} if isinstance(generator, VisionGenerator) else {}
                ids, dropped = generator.encode_counted(_with_system(msgs, args.system), **images)
                if dropped:
                    cut += 1
                    log.warning("swiftune: %s: dropped %d of %d prompt tokens to fit --max-length %d (older turns "
                                "first, then the start of the prompt); raise --max-length to keep them",
                                where, dropped, dropped + len(ids), args.max_length)
                prompts.append(ids)
            answers = generator.generate(prompts, args)
            for ((row, _), _where), answer in zip(chunk, answers):
                record = dict(row)
                if "response" in record:  # a reference answer in the input (query-response rows)
                    record["reference"] = record.pop("response")
                record["response"] = answer
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                written.append(record)
            fh.flush()
            bar.update(len(chunk))
    os.replace(tmp, out_path)
    notes = [f"{cut} prompt(s) cut to --max-length {args.max_length}"] if cut else []
    notes += [f"{len(read.skipped)} bad row(s) skipped"] if read.skipped else []
    print(f"wrote {len(written)} rows to {out_path}" + (f" ({'; '.join(notes)})" if notes else ""))
    return written


def report_skipped(source: str, skipped: list[str]) -> None:
    """One warning listing the skipped rows ("file line N: why"), as sft reports its bad rows."""
    if not skipped:
        return
    shown = skipped[:SHOWN_BAD_ROWS]
    more = f"\n  ... and {len(skipped) - len(shown)} more" if len(skipped) > len(shown) else ""
    log.warning("swiftune: %s: skipped %d bad row(s):\n  %s%s", source, len(skipped), "\n  ".join(shown), more)


def _with_system(messages: list[dict], system: str | None) -> list[dict]:
    if system and not (messages and messages[0].get("role") == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages
