"""sft's run machinery for the tasks beyond chat (text-to-image, image classification).

A task recipe builds its ``TaskSetup`` (the ``SwiftModel``, datasets, collator, metrics); this module
does what every sft run does around it: the run-folder lock, resume / overwrite rules, ``args.json``,
the ``logging.jsonl`` run log, the non-finite guard, atomic checkpoints, ``final/`` and ``loss.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .arguments import SftArguments


@dataclass
class TaskSetup:
    """What a task recipe hands to ``run_task``."""

    swift: Any
    tuner_config: Any
    train: Any
    val: Any = None
    collator: Any = None
    processing_class: Any = None
    compute_metrics: Callable | None = None
    trainer_class: Any = None
    label_names: list[str] = field(default_factory=lambda: ["labels"])
    #: Banner lines after model / tuner / trainable ("data ...").
    banner: list[str] = field(default_factory=list)
    #: More of ``args.json`` (what infer needs to rebuild the model).
    resolved: dict[str, Any] = field(default_factory=dict)


def run_task(args: SftArguments, build: Callable[[SftArguments, str], TaskSetup]) -> Any:
    """Train ``build``'s setup as ``sft`` trains a chat model; returns an ``SftResult``."""
    from .run_lock import locked_run_folder
    from .sft import default_output_dir

    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(args)
    with locked_run_folder(output_dir):
        return _run(args, output_dir, build)


def _run(args: SftArguments, output_dir: Path, build: Callable[[SftArguments, str], TaskSetup]) -> Any:
    from .runtime import quiet_libraries

    quiet_libraries()
    from transformers import TrainingArguments

    from ..loraplus import loraplus_optimizer
    from .callbacks import LOG_NAME, RunLogger, debug_hooks, read_log
    from .finite_guard import FiniteGuard
    from .plot import plot_loss
    from .run_stages import start_in_folder, train_and_save
    from .sft import SftResult, check_reporters, resolve_model, training_kwargs, write_args_json
    from .trainer import SwiftTrainer

    check_reporters(args.report_to)
    start = start_in_folder(args, output_dir)
    if start.finished is not None:
        return start.finished
    args, resume, precision = start.args, start.resume, start.precision
    setup = build(args, precision)
    has_eval = setup.val is not None and len(setup.val) > 0
    kwargs = training_kwargs(args, output_dir, precision, has_eval)
    kwargs.update(include_num_input_tokens_seen="no", label_names=setup.label_names)
    training_args = TrainingArguments(**kwargs)
    trainer_class = setup.trainer_class or SwiftTrainer
    trainer = trainer_class(
        model=setup.swift,
        args=training_args,
        optimizer_cls_and_kwargs=loraplus_optimizer(training_args, args.lorap_lr_ratio, setup.swift),
        train_dataset=setup.train,
        eval_dataset=setup.val if has_eval else None,
        data_collator=setup.collator,
        processing_class=setup.processing_class,
        compute_metrics=setup.compute_metrics,
        callbacks=[RunLogger(output_dir), FiniteGuard(output_dir), *debug_hooks()],
    )
    if trainer.args.should_save:
        resolved = {"output_dir": str(output_dir.resolve()), "model": resolve_model(args.model),
                    "tuner_args": setup.tuner_config.to_dict(), "resolved_precision": precision, **setup.resolved}
        trainer.run_args = write_args_json(args, output_dir, resolved)
        params = setup.swift.trainable_summary()
        lines = [f"task       {args.task}", f"model      {args.model}", f"tuner      {setup.tuner_config.tuner}",
                 f"trainable  {params.trainable:,} of {params.total:,} parameters ({params.percent:.3f}%)",
                 *setup.banner, f"output     {output_dir}"]
        print("\n".join(lines), flush=True)
        if resume:
            print(f"resuming from {resume}", flush=True)
    result, final = train_and_save(trainer, output_dir, resume, has_eval)
    if trainer.args.should_save:
        plot_loss(read_log(output_dir / LOG_NAME), output_dir / "loss.png", title=f"{args.model} + {args.tuner} ({args.task})")
        print(f"final adapter: {final}", flush=True)
    return SftResult(output_dir=output_dir, adapter_dir=final, global_step=result.global_step, metrics=dict(result.metrics))
