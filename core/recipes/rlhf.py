"""``swiftune rlhf``: preference tuning (DPO, ORPO, KTO, SimPO, CPO, GRPO) with one tuner on TRL.

The run reads like ``swiftune sft``'s: the same model loading, chat templates, dataset adapters,
tuners, ``TrainingArguments``, and run folder (``args.json``, ``logging.jsonl`` with TRL's metric
names, atomic ``checkpoint-N/``, exact ``--resume``, ``final/``, ``loss.png``) plus
``rewards.png`` (the reward margin, or GRPO's mean reward). ``swiftune infer`` / ``export`` read
the result as an sft run's. The losses are TRL's own; see ``rlhf_trainers`` for the reference model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .rlhf_arguments import NEEDS_REFERENCE, RlhfArguments
from .run_stages import start_in_folder, train_and_save
from .sft import SftResult, check_reporters, default_output_dir, resolve_model, training_kwargs, write_args_json

#: The data kind each method trains on (KTO also takes pairs: each gives a desirable and an undesirable row).
DATA_KINDS = {"dpo": ("preference",), "orpo": ("preference",), "cpo": ("preference",), "simpo": ("preference",),
              "kto": ("kto", "preference"), "grpo": ("prompt",)}
#: The logged value drawn in ``rewards.png``, the first one the run logged.
REWARD_KEYS = ("rewards/margins", "reward")
REWARDS_PLOT = "rewards.png"


def load_rows(args: RlhfArguments, template: Any) -> tuple[list[dict], list[dict]]:
    """TRL's text rows (train, eval), rendered with ``template`` from any registered preference format."""
    from ..data.preference import render_rows
    from . import bridge

    train, val, kind = bridge.load_preference_rows(
        args.dataset, args.val_dataset, seed=args.seed, val_ratio=args.val_ratio,
        skip_bad_rows=args.skip_bad_rows, adapter="prompt" if args.rlhf_type == "grpo" else None)
    if kind not in DATA_KINDS[args.rlhf_type]:
        wanted = " or ".join(DATA_KINDS[args.rlhf_type])
        raise ConfigError(f"--dataset: {args.rlhf_type} trains on {wanted} rows, but the data gives {kind} examples "
                          "(see docs/rlhf.md for the row layouts)")
    if args.rlhf_type == "kto" and kind == "preference":
        train, val, kind = unpaired(train), unpaired(val), "kto"
    return render_rows(train, kind, template), render_rows(val, kind, template)


def unpaired(examples: list[dict]) -> list[dict]:
    """Preference pairs as KTO rows: the chosen answer desirable, the rejected one not."""
    out = []
    for example in examples:
        messages = example["messages"]
        rejected = [*messages[:-1], {"role": "assistant", "content": example["rejected_response"]}]
        out += [{"messages": messages, "label": True}, {"messages": rejected, "label": False}]
    return out


def needs_reference(args: RlhfArguments) -> bool:
    beta = args.method_beta()
    return args.rlhf_type in NEEDS_REFERENCE or (args.rlhf_type == "grpo" and beta is not None and beta != 0.0)


def reference_model(args: RlhfArguments, swift: Any) -> Any:
    """A separate reference model, or None where the policy with its adapters disabled is the reference."""
    from . import bridge

    if args.rlhf_type not in NEEDS_REFERENCE:
        if args.ref_model:
            raise ConfigError(f"--ref_model: {args.rlhf_type} takes no reference model here"
                              + (" (with beta > 0 TRL loads a copy of --model)" if args.rlhf_type == "grpo" else ""))
        return None
    trains_base = any(t.trains_base_parameters for t in swift.tuners.values())
    if args.ref_model is None and not trains_base:
        return None
    ref, _ = bridge.load_model_and_tokenizer(args.ref_model or args.model,
                                             trust_remote_code=args.allows_remote_code())
    ref.eval().requires_grad_(False)
    return ref


def check_tuner(args: RlhfArguments, swift: Any) -> None:
    """Refuse combinations TRL's trainers would get wrong rather than fail later or train silently badly."""
    prompt = [t.name for t in swift.tuners.values() if t.prompt_learning]
    if prompt and args.rlhf_type in ("orpo", "cpo", "simpo"):
        raise ConfigError(f"--tuner {prompt[0]}: {args.rlhf_type}'s trainer compares logits with the labels position by "
                          "position, which virtual tokens shift; use dpo / kto / grpo, or a non-prompt tuner")
    source = str(getattr(swift.model.config, "_name_or_path", "") or "")
    if args.rlhf_type == "grpo" and needs_reference(args) and not (Path(source).is_dir() or "/" in source):
        raise ConfigError(f"--beta {args.method_beta()}: GRPO's KL term makes TRL load a reference copy from the "
                          f"model's folder or hub id, and {args.model} has neither ({source or 'none'}); pass a model "
                          "folder (e.g. one written by swiftune export) or --beta 0")
    head = swift.model.get_output_embeddings()
    if head is not None and any(p.requires_grad for p in head.parameters()) and len(list(head.children())):
        raise ConfigError("the tuner wraps the LM head, which TRL's log-probabilities bypass (they read its weight "
                          "directly): leave lm_head out of target_modules")


def banner(args: RlhfArguments, swift: Any, train: list, val: list, reference: Any, output_dir: Path,
           precision: str) -> str:
    params = swift.trainable_summary()
    if not needs_reference(args):
        ref = "none (reference-free method)"
    elif args.rlhf_type == "grpo":
        ref = f"a copy of {args.model} that TRL loads (beta > 0)"
    elif reference is None:
        ref = "the policy with its adapters disabled (no second model)"
    else:
        ref = f"a separate copy of {args.ref_model or args.model}"
    return "\n".join([
        f"model      {args.model}",
        f"method     {args.rlhf_type} (TRL)",
        f"tuner      {args.tuner}; trainable {params.trainable:,} of {params.total:,} parameters ({params.percent:.3f}%)",
        f"reference  {ref}",
        f"data       {len(train):,} train rows, {len(val):,} eval, precision {precision}",
        f"output     {output_dir}",
    ])


def make_trainer(args: RlhfArguments, swift: Any, reference: Any, tokenizer: Any, train_rows: list[dict],
                 val_rows: list[dict], output_dir: Path, precision: str, callbacks: list | tuple = ()) -> Any:
    """The method's TRL trainer over the model inside ``swift`` (the datasets are TRL's text rows)."""
    from datasets import Dataset

    from .rlhf_trainers import method_config, reward_functions, trainer_class

    common = training_kwargs(args, output_dir, precision, has_eval=bool(val_rows))
    config = method_config(args, common, precompute_reference=needs_reference(args) and reference is None)
    kwargs: dict[str, Any] = {}
    if args.rlhf_type == "grpo":
        kwargs["reward_funcs"] = reward_functions(args.reward_funcs)
    if reference is not None:
        kwargs["ref_model"] = reference
    return trainer_class(args.rlhf_type)(
        model=swift.model, swift=swift, args=config, train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None, processing_class=tokenizer,
        callbacks=list(callbacks), **kwargs)


def run_rlhf(args: RlhfArguments) -> SftResult:
    """Preference-tune; the run folder is locked for the whole run, as sft's."""
    from .run_lock import locked_run_folder

    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(args)
    with locked_run_folder(output_dir):
        return _run_rlhf(args, output_dir)


def _run_rlhf(args: RlhfArguments, output_dir: Path) -> SftResult:
    from .runtime import quiet_libraries

    quiet_libraries()
    from ..api import Swift
    from . import bridge, vision
    from .callbacks import LOG_NAME, RunLogger, debug_hooks, read_log
    from .finite_guard import FiniteGuard
    from .plot import plot_loss, plot_metric
    from .rlhf_trainers import reward_functions

    check_reporters(args.report_to)
    tuner_config = args.tuner_config()
    if args.rlhf_type == "grpo":
        reward_functions(args.reward_funcs)  # unknown names fail before anything loads
    start = start_in_folder(args, output_dir)
    if start.finished is not None:
        return start.finished
    args, resume, precision = start.args, start.resume, start.precision
    model, tokenizer = bridge.load_model_and_tokenizer(args.model, trust_remote_code=args.allows_remote_code())
    vision.text_only_command(tokenizer, args.model, "rlhf")
    template = bridge.resolve_template(args.template, model, tokenizer)
    train_rows, val_rows = load_rows(args, template)
    swift = Swift.prepare(model, tuner_config, adapter_dtype=args.adapter_dtype)
    check_tuner(args, swift)
    reference = reference_model(args, swift)
    trainer = make_trainer(args, swift, reference, tokenizer, train_rows, val_rows, output_dir, precision,
                           callbacks=[RunLogger(output_dir), FiniteGuard(output_dir), *debug_hooks()])
    if trainer.args.should_save:
        if args.max_prompt_length is not None:
            print(f"swiftune: --max_prompt_length {args.max_prompt_length} is not applied: TRL's {args.rlhf_type} "
                  f"trainer bounds prompt + answer by --max_length ({args.max_length}) only", flush=True)
        resolved = {"output_dir": str(output_dir.resolve()), "model": resolve_model(args.model),
                    "template": bridge.template_name(template), "tuner_args": tuner_config.to_dict(),
                    "resolved_precision": precision}
        trainer.run_args = write_args_json(args, output_dir, resolved, command="rlhf")  # also into checkpoints, final/
        print(banner(args, swift, train_rows, val_rows, reference, output_dir, precision), flush=True)
        if resume:
            print(f"resuming from {resume}", flush=True)

    result, final = train_and_save(trainer, output_dir, resume, has_eval=bool(val_rows))
    if trainer.args.should_save:
        records = read_log(output_dir / LOG_NAME)
        title = f"{args.model} + {args.tuner} ({args.rlhf_type})"
        plot_loss(records, output_dir / "loss.png", title=title)
        key = next((k for k in REWARD_KEYS if any(r.get(k) is not None for r in records)), None)
        if key is not None:
            plot_metric(records, key, output_dir / REWARDS_PLOT, title=title)
        print(f"final adapter: {final}", flush=True)
    return SftResult(output_dir=output_dir, adapter_dir=final, global_step=result.global_step,
                     metrics=dict(result.metrics))
