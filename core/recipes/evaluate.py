"""``swiftune eval``: score the base model and each adapter on the same data, side by side.

Every dataset goes through the registered dataset adapters; the kind of example decides the
measure: chat examples ending in an assistant answer are generated and compared with it
(exact match, contains, and a regex-extracted match with ``--answer_regex``), multiple-choice items
are scored by log-likelihood (accuracy), plain text by perplexity. The base model runs with
every adapter off, so the gain of each adapter is read off one table. ``--eval_backend lm_eval``
hands the same model object to lm-evaluation-harness instead.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .arguments import EvalArguments, GenerationArguments

BASE = "base"
log = logging.getLogger("swiftune.eval")


def run_eval(args: EvalArguments) -> dict[str, Any]:
    """Returns the results (also written to ``--result_path`` and printed as a table)."""
    from transformers import set_seed

    from .runtime import quiet_libraries

    quiet_libraries()
    set_seed(args.seed)
    if args.eval_backend == "lm_eval":
        return _run_lm_eval(args)
    if not args.eval_dataset:
        raise ConfigError("--eval_dataset: give at least one dataset (a registered name or a local file)")
    generator, base, routes = _build(args)
    results: dict[str, Any] = {"model": base, "datasets": {}}
    samples: list[dict[str, Any]] = []
    for spec in args.eval_dataset:
        examples, kind = _load(spec, args)
        scores = {}
        for label, adapter in routes.items():
            from .adapter_choice import only_adapter

            with only_adapter(generator.model, adapter):
                scores[label], rows = _score(kind, examples, generator, args)
            samples += [{"dataset": spec, "model": label, **row} for row in rows]
        results["datasets"][spec] = {"kind": kind, "n": len(examples), "scores": scores}
    _write(results, samples, args)
    print(table(results))
    return results


def _build(args: EvalArguments) -> tuple[Any, str, dict[str, str | None]]:
    """(generator, base model name, model label -> adapter name or None for the base)."""
    from .adapter_choice import load_named
    from .generation import Generator

    loaded = load_named(args.adapters, model=args.model, template=args.template, precision=args.precision,
                        trust_remote_code=args.allows_remote_code())
    routes: dict[str, str | None] = {} if args.skip_base else {BASE: None}
    routes.update(loaded.names)
    if not routes:
        raise ConfigError("--skip_base: there is no adapter to evaluate either (give --adapters)")
    built = loaded.built
    generator = Generator(model=built.model, tokenizer=built.tokenizer, template=built.template, max_length=args.max_length)
    return generator, built.base, routes


def _load(spec: str, args: EvalArguments) -> tuple[list[dict], str]:
    from ..data.load import load_dataset

    examples, kind = load_dataset(spec, seed=args.seed, skip_bad_rows=args.skip_bad_rows)
    if kind not in ("messages", "multiple_choice", "text"):
        raise ConfigError(f"--eval_dataset {spec}: gives {kind} examples; eval scores chat answers, multiple-choice "
                          "items (question, choices, answer) or plain text")
    if kind == "messages":
        examples = [e for e in examples if e["messages"] and e["messages"][-1]["role"] == "assistant"]
        if not examples:
            raise ConfigError(f"--eval_dataset {spec}: no example ends with an assistant answer to compare with")
    return examples[: args.eval_limit] if args.eval_limit else examples, kind


def _score(kind: str, examples: list[dict], gen: Any, args: EvalArguments) -> tuple[dict[str, float], list[dict]]:
    if kind == "messages":
        return _score_answers(examples, gen, args)
    if kind == "multiple_choice":
        return _score_choices(examples, gen, args)
    return _score_text(examples, gen, args)


def _score_answers(examples: list[dict], gen: Any, args: EvalArguments) -> tuple[dict[str, float], list[dict]]:
    from ..evaluation import metrics

    pattern = re.compile(args.answer_regex) if args.answer_regex else None
    settings = GenerationArguments(max_new_tokens=args.max_new_tokens, do_sample=False)
    rows: list[dict] = []
    cut: list[int] = []
    for start in range(0, len(examples), args.batch_size):
        chunk = examples[start : start + args.batch_size]
        prompts = [_encoded(gen, e["messages"][:-1], cut) for e in chunk]
        for example, answer in zip(chunk, gen.generate(prompts, settings)):
            reference = example["messages"][-1]["content"]
            row = {"prediction": answer, "reference": reference,
                   "exact_match": metrics.exact_match(answer, reference),
                   "contains": metrics.contains(answer, reference)}
            if pattern is not None:
                row["regex_match"] = metrics.exact_match(answer, reference, pattern)
            rows.append(row)
    _warn_cut(cut, len(examples), args.max_length)
    names = ["exact_match", "contains"] + (["regex_match"] if pattern is not None else [])
    return {n: metrics.mean(float(r[n]) for r in rows) for n in names}, rows


def _score_choices(examples: list[dict], gen: Any, args: EvalArguments) -> tuple[dict[str, float], list[dict]]:
    from ..evaluation import likelihood, metrics

    rows, cut = [], []
    for example in examples:
        prompt = _encoded(gen, example["messages"], cut)
        choices = [gen.tokenizer(c, add_special_tokens=False)["input_ids"] for c in example["choices"]]
        rows.append(likelihood.multiple_choice(gen.model, prompt, choices, example["answer"], args.max_length))
    _warn_cut(cut, len(examples), args.max_length)
    return {n: metrics.mean(r[n] for r in rows) for n in ("accuracy", "accuracy_norm")}, rows


def _encoded(gen: Any, messages: list[dict], cut: list[int]) -> list[int]:
    """The prompt's ids; the tokens dropped to fit ``--max_length`` are counted in ``cut``."""
    ids, dropped = gen.encode_counted(messages)
    if dropped:
        cut.append(dropped)
    return ids


def _warn_cut(cut: list[int], total: int, max_length: int) -> None:
    if cut:
        log.warning(
            "swiftune eval: %d of %d prompts were cut to --max_length %d (%d tokens dropped in all); the scores "
            "read shortened prompts: raise --max_length", len(cut), total, max_length, sum(cut))


def _score_text(examples: list[dict], gen: Any, args: EvalArguments) -> tuple[dict[str, float], list[dict]]:
    from ..evaluation import likelihood

    total, count, rows = 0.0, 0, []
    for example in examples:
        nll, n = likelihood.negative_log_likelihood(gen.model, gen.tokenizer(example["text"])["input_ids"], args.max_length)
        total, count = total + nll, count + n
        rows.append({"tokens": n, "perplexity": likelihood.perplexity(nll, n)})
    return {"perplexity": likelihood.perplexity(total, count), "tokens": float(count)}, rows


def _write(results: dict, samples: list[dict], args: EvalArguments) -> None:
    path = Path(args.result_path or f"eval_output/eval-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    samples_path = path.with_suffix(".samples.jsonl")
    samples_path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    results["result_path"] = str(path)
    print(f"wrote {path} (and the per-example {samples_path.name})")


def table(results: dict) -> str:
    """One line per dataset and measure, one column per model (base first)."""
    lines = []
    for spec, entry in results["datasets"].items():
        models = list(entry["scores"])
        lines.append(f"{spec} ({entry['kind']}, {entry['n']} examples)")
        lines.append("  " + "measure".ljust(16) + "".join(m[:14].rjust(16) for m in models))
        for measure in next(iter(entry["scores"].values())):
            cells = "".join(f"{entry['scores'][m][measure]:16.4f}" for m in models)
            lines.append("  " + measure.ljust(16) + cells)
    return "\n".join(lines)


def _run_lm_eval(args: EvalArguments) -> dict[str, Any]:
    """lm-evaluation-harness over the same model object (its tasks usually download their data)."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise ConfigError("--eval_backend lm_eval: lm-evaluation-harness is not installed (pip install lm-eval)") from None
    if not args.tasks:
        raise ConfigError("--tasks: name the lm-evaluation-harness tasks to run (e.g. --tasks arc_easy hellaswag)")
    generator, base, routes = _build(args)
    from .adapter_choice import only_adapter

    results: dict[str, Any] = {"model": base, "backend": "lm_eval", "tasks": {}}
    for label, adapter in routes.items():
        with only_adapter(generator.model, adapter):
            lm = HFLM(pretrained=generator.model, tokenizer=generator.tokenizer,
                      batch_size=args.batch_size)
            out = lm_eval.simple_evaluate(model=lm, tasks=list(args.tasks), limit=args.eval_limit)
        results["tasks"][label] = out.get("results", {})
    path = Path(args.result_path or f"eval_output/lm_eval-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results["tasks"], indent=2, default=str))
    return results
