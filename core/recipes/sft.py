"""``swiftune sft``: supervised fine-tuning with one tuner on the transformers ``Trainer``.

The run folder gets ``args.json`` (everything ``infer`` needs to rebuild the model), the
``logging.jsonl`` run log, atomic ``checkpoint-N/`` folders, the final adapter in ``final/`` and
``loss.png``. Distribution (DDP, FSDP, DeepSpeed) is the Trainer's: launch with ``torchrun`` or
``accelerate launch``; only the main process writes files.

A run is three steps: ``set_up`` (run folder, model, data), ``build_trainer`` (tuner, lean-training
choices, ``SwiftTrainer``, ``args.json``) and ``train_and_publish`` (train, ``final/``, the loss plot).
The helpers before them (output folder, resume, reporters, training arguments, ``args.json``,
``save_final``) serve the rlhf and task recipes too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from . import sft_defaults
from .arguments import SftArguments
from .compat import activation_checkpointing
from .run_folder import ARGS_NAME, FINAL_NAME, refuse_previous_run
from .runtime import is_main_process, world_size


@dataclass
class SftResult:
    """What a run produced: its folder, the final adapter and the last logged metrics."""

    output_dir: Path
    adapter_dir: Path
    global_step: int
    metrics: dict[str, Any] = field(default_factory=dict)


def default_output_dir(args: SftArguments) -> Path:
    if world_size() > 1:
        raise ConfigError("--output-dir: required for a distributed run (every process must write to the same place)")
    model = Path(args.model.rstrip("/")).name.replace(".gguf", "") or "model"
    return Path("output") / f"{model}-{args.tuner}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_model(name: str) -> str:
    """Local paths become absolute (``args.json`` must work from any directory); names stay names."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def resume_checkpoint(args: SftArguments, output_dir: Path) -> str | None:
    """The checkpoint to resume from (None: start from step 0); refuses to clobber a previous run."""
    from .checkpoint_check import check_resumable, newest_good_checkpoint

    if isinstance(args.resume, str):
        path = Path(args.resume)
        if not (path / "trainer_state.json").is_file():
            raise ConfigError(f"--resume: {path} is not a complete checkpoint folder (no trainer_state.json)")
        check_resumable(path)
        return str(path)
    if args.resume:
        found = newest_good_checkpoint(output_dir)  # damaged newer ones are skipped with a warning
        if found is None and is_main_process():
            print(f"swiftune: no checkpoint in {output_dir} yet; starting from step 0")
        return str(found) if found else None
    if not args.overwrite_output_dir:
        refuse_previous_run(output_dir)  # checkpoints, or a finished run's final/, args.json, log
    return None


def clear_previous_run(output_dir: Path) -> None:
    from .callbacks import LOG_NAME
    from .trainer import STAGING, complete_checkpoints

    for path in complete_checkpoints(output_dir):
        shutil.rmtree(path)
    for name in (LOG_NAME, STAGING, FINAL_NAME, ARGS_NAME, "loss.png"):  # nothing of the old run stays mixed in
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


#: --report-to names whose Trainer callback needs a package swiftune does not depend on.
_REPORTER_PACKAGES = {"tensorboard": ("is_tensorboard_available", "tensorboardX (or tensorboard)"),
                      "wandb": ("is_wandb_available", "wandb"), "mlflow": ("is_mlflow_available", "mlflow")}


def check_reporters(report_to: list[str]) -> None:
    """Fail before loading anything when a --report-to target's package is missing."""
    from transformers import integrations

    for name in report_to:
        probe, package = _REPORTER_PACKAGES.get(name, (None, None))
        if probe and not getattr(integrations, probe)():
            raise ConfigError(f"--report-to {name}: needs the {package} package; pip install {package.split()[0]}")


def training_arguments(args: SftArguments, output_dir: Path, precision: str, has_eval: bool, padding_free: bool = False):
    from transformers import TrainingArguments

    return TrainingArguments(**training_kwargs(args, output_dir, precision, has_eval, padding_free))


def training_kwargs(args: SftArguments, output_dir: Path, precision: str, has_eval: bool,
                    padding_free: bool = False) -> dict[str, Any]:
    """The ``TrainingArguments`` fields a run sets (TRL's configs subclass it and take them too)."""
    import torch

    from .deepspeed_presets import resolve_deepspeed
    from .sharding import check_fsdp_device

    check_fsdp_device(args.fsdp, torch.accelerator.is_available())
    eval_steps = args.eval_steps or args.save_steps
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size or args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=sft_defaults.learning_rate(args),
        lr_scheduler_type=args.lr_scheduler_type,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        optim=args.optim,
        **activation_checkpointing(args.gradient_checkpointing),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_steps=args.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a NaN loss must show (FiniteGuard stops the run on it)
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        seed=args.seed,
        data_seed=args.seed,
        report_to=args.report_to or "none",
        dataloader_num_workers=args.dataloader_num_workers,
        remove_unused_columns=False,
        label_names=["labels"],
        # A padding-free row has no padding token at all (and its pad id may be a real token, <|im_end|>).
        include_num_input_tokens_seen="all" if padding_free else "non_padding",
        use_cpu=not torch.cuda.is_available(),
        ddp_backend=args.ddp_backend,
        ddp_find_unused_parameters=False if world_size() > 1 else None,
        fsdp=args.fsdp,
        fsdp_config=args.fsdp_config,
        deepspeed=resolve_deepspeed(args.deepspeed),
    )


def write_args_json(args: SftArguments, output_dir: Path, resolved: dict[str, Any], command: str = "sft") -> dict[str, Any]:
    data = {"command": command, "swiftune_version": __version__, **args.to_json_dict(), **resolved}
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".{ARGS_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, output_dir / ARGS_NAME)
    return data


def summary(model_name: str, tuner_config: Any, swift: Any, train: Any, val: Any, trainer: Any,
            precision: str, output_dir: Path, train_stats: Any = None) -> str:
    """The start banner: model, tuner, trainable parameters, data and the step count (token counts
    from ``train_stats`` when given, rather than a second pass over the rows)."""
    params = swift.trainable_summary()
    if train_stats is not None:
        tokens, answer = train_stats.tokens, train_stats.trained_tokens
    else:
        tokens = sum(len(ids) for ids in train["input_ids"])
        answer = sum(sum(1 for t in labels if t != -100) for labels in train["labels"])
    args = trainer.args
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    steps = args.max_steps if args.max_steps > 0 else max(1, -(-len(train) // batch)) * int(-(-args.num_train_epochs // 1))
    tuner_args = {k: v for k, v in tuner_config.to_dict().items() if k not in ("tuner",) and v not in (None, [], False)}
    lines = [
        f"model      {model_name}",
        f"tuner      {tuner_config.tuner} {json.dumps(tuner_args)}",
        f"trainable  {params.trainable:,} of {params.total:,} parameters ({params.percent:.3f}%)",
        f"data       {len(train):,} train examples ({tokens:,} tokens, {answer:,} trained on), {len(val) if val is not None else 0:,} eval",
        f"steps      ~{steps:,} optimizer steps of {batch} examples, precision {precision}, {args.world_size} process(es)",
        f"output     {output_dir}",
    ]
    return "\n".join(lines)


def save_final(trainer: Any, output_dir: Path) -> Path:
    """Save the trained adapters to ``<output>/final`` through staging and one rename (all ranks call it)."""
    from .trainer import STAGING, publish

    final = output_dir / FINAL_NAME
    staged = output_dir / STAGING / FINAL_NAME
    if trainer.args.should_save and staged.exists():
        shutil.rmtree(staged)
    trainer.save_model(str(staged))
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        publish(staged, final)
        try:
            (output_dir / STAGING).rmdir()  # only when empty: leftovers are kept for inspection
        except OSError:
            pass
    return final


def run_sft(args: SftArguments) -> SftResult:
    """Fine-tune; the run folder is locked for the whole run (a second run there fails at once)."""
    from .run_lock import locked_run_folder

    if args.task == "text-to-image":
        from .diffusion import run_text_to_image

        return run_text_to_image(args)
    if args.task == "image-classification":
        from .image_classification import run_image_classification

        return run_image_classification(args)

    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(args)
    with locked_run_folder(output_dir):
        return _run_sft(args, output_dir)


def _run_sft(args: SftArguments, output_dir: Path) -> SftResult:
    from .runtime import quiet_libraries

    quiet_libraries()  # before the steps' imports, which pull in the libraries that warn at import
    run = set_up(args, output_dir)
    if isinstance(run, SftResult):
        return run  # the resumed run is already complete
    trainer = build_trainer(run)
    return train_and_publish(run, trainer)


# -- the three steps of a run: set up, build the trainer, train and publish ----------------------------------------
@dataclass
class SftRun:
    """What ``set_up`` gathered for the trainer: the arguments as resumed, the run folder's decisions,
    the model and the tokenized data (``processor`` only for a vision-language model)."""

    args: SftArguments
    output_dir: Path
    resume: str | None
    precision: str
    tuner_config: Any
    model: Any
    tokenizer: Any
    processor: Any
    template: Any
    train: Any
    train_stats: Any
    val: Any

    @property
    def has_eval(self) -> bool:
        return self.val is not None and len(self.val) > 0


def set_up(args: SftArguments, output_dir: Path) -> SftRun | SftResult:
    """The run folder (resume, or refuse / clear a previous run), the seed, the model and the data.

    Returns the finished run's ``SftResult`` instead when a resumed run has nothing left to train.
    """
    from . import bridge, vision
    from .run_stages import start_in_folder

    check_reporters(args.report_to)
    tuner_config = args.tuner_config()
    start = start_in_folder(args, output_dir)  # resume / complete / clear, then precision and seed
    if start.finished is not None:
        return start.finished
    args, resume, precision = start.args, start.resume, start.precision
    model, tokenizer = bridge.load_model_and_tokenizer(args.model, trust_remote_code=args.allows_remote_code())
    processor = tokenizer if vision.is_image_text(tokenizer) else None  # a vision-language model: see vision.py
    tokenizer = processor.tokenizer if processor else tokenizer
    vision.limit_pixels(processor, args.max_pixels)
    template = bridge.resolve_template(args.template, model, tokenizer)
    train_rows, val_rows = bridge.load_train_val(
        args.dataset, args.val_dataset, seed=args.seed, val_ratio=args.val_ratio, skip_bad_rows=args.skip_bad_rows
    )
    train_rows, val_rows = (bridge.personalize(rows, system=args.system, model_name=args.model_name,
                                               model_author=args.model_author) for rows in (train_rows, val_rows))
    if processor is not None:
        train, train_stats, val = vision.tokenize_train_val(train_rows, val_rows, processor, template, args)
        tuner_config = vision.frozen_parts_config(tuner_config, processor.kind, args.freeze_vit, args.freeze_aligner)
    else:
        vision.check_text_only([*train_rows, *val_rows], args.model)
        train, train_stats = bridge.tokenize_with_stats(train_rows, tokenizer, template, args.max_length,
                                                        args.truncation, args.packing)
        val = bridge.tokenize(val_rows, tokenizer, template, args.max_length, args.truncation) if val_rows else None
    return SftRun(args, output_dir, resume, precision, tuner_config, model, tokenizer, processor, template,
                  train, train_stats, val)


def build_trainer(run: SftRun) -> Any:
    """The tuner on the model, the lean-training choices and the ``SwiftTrainer``; the main process
    writes ``args.json`` and prints the start banner."""
    from ..api import Swift
    from ..loraplus import loraplus_optimizer
    from . import bridge, vision
    from .callbacks import RunLogger, debug_hooks
    from .finite_guard import FiniteGuard
    from .lean import lean_training
    from .trainer import SwiftTrainer

    args, output_dir, processor, tokenizer = run.args, run.output_dir, run.processor, run.tokenizer
    swift = Swift.prepare(run.model, run.tuner_config, adapter_dtype=args.adapter_dtype)
    lean = lean_training(vision.lean_arguments(args) if processor else args, swift, run.precision)
    training_args = training_arguments(args, output_dir, run.precision, has_eval=run.has_eval,
                                       padding_free=lean.padding_free)
    trainer = SwiftTrainer(
        model=swift,
        args=training_args,
        optimizer_cls_and_kwargs=loraplus_optimizer(training_args, args.lorap_lr_ratio, swift),
        train_dataset=run.train,
        eval_dataset=run.val,
        data_collator=vision.ImageTextCollator(tokenizer.pad_token_id) if processor else bridge.collator(
            tokenizer, padding_free=lean.padding_free),
        no_kv_cache=lean.padding_free or lean.compiled_blocks > 0,
        answer_logits_only=lean.answer_logits_only,
        head_loss=lean.head_loss,
        processing_class=tokenizer,
        callbacks=[RunLogger(output_dir), FiniteGuard(output_dir), *debug_hooks()],
    )
    if trainer.args.should_save:
        resolved = {"output_dir": str(output_dir.resolve()), "model": resolve_model(args.model),
                    "template": bridge.template_name(run.template), "tuner_args": run.tuner_config.to_dict(),
                    "resolved_precision": run.precision, "learning_rate": sft_defaults.learning_rate(args)}
        trainer.run_args = write_args_json(args, output_dir, resolved)  # also into each checkpoint and final/
        print(summary(args.model, run.tuner_config, swift, run.train, run.val, trainer, run.precision, output_dir,
                      run.train_stats), flush=True)
        print(f"lean       {lean.describe()}", flush=True)
        if run.resume:
            print(f"resuming from {run.resume}", flush=True)
    return trainer


def train_and_publish(run: SftRun, trainer: Any) -> SftResult:
    """Train (from the resumed checkpoint), evaluate the last step if no evaluation landed on it,
    publish ``final/`` by one rename and plot the loss."""
    from .callbacks import LOG_NAME, read_log
    from .plot import plot_loss

    args, output_dir = run.args, run.output_dir
    result = trainer.train(resume_from_checkpoint=run.resume)
    if run.val is not None and len(run.val) and not any(
        r.get("step") == trainer.state.global_step and "eval_loss" in r for r in trainer.state.log_history
    ):
        trainer.evaluate()

    final = save_final(trainer, output_dir)
    if trainer.args.should_save:
        records = read_log(output_dir / LOG_NAME)
        plot_loss(records, output_dir / "loss.png", title=f"{args.model} + {args.tuner}")
        print(f"final adapter: {final}", flush=True)
    return SftResult(output_dir=output_dir, adapter_dir=final, global_step=result.global_step, metrics=dict(result.metrics))
