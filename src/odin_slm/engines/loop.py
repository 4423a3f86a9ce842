"""The ``loop`` engine: a hand-written training loop on accelerate, bypassing SFTTrainer entirely.

It reproduces what ``Trainer`` does for the same data, seed and settings, so its loss curve
matches the ``trl`` engine's:

- batches come from a ``RandomSampler`` made seedable by accelerate (``use_seedable_sampler``,
  seeded from ``args.seed`` / ``args.data_seed``): the same order Trainer draws;
- the loss of an optimizer step is summed over the answer tokens of all its micro-batches and
  divided by their count (Trainer's ``num_items_in_batch``), so gradient accumulation is exact;
- AdamW with Trainer's defaults (no decay on biases and norms), the same LR schedule and warmup,
  gradient clipping at ``max_grad_norm``.

Checkpoints are ``accelerator.save_state`` folders named ``checkpoint-<step>`` (weights,
optimizer, scheduler, RNG states) plus ``odin_loop_state.json`` with the step and losses,
written under a temporary name and renamed into place when complete.

The run's ``TrainerCallback``s get ``on_step_end`` after each optimizer step, as under Trainer;
``control.should_save`` / ``control.should_training_stop`` save a checkpoint / stop the loop.
The loop engine does not pack, evaluate, report or push to the Hub: those options are refused.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odin_slm.checkpoints import LOOP_STATE, checkpoint_dirs, staged_dir
from odin_slm.config import ConfigError
from odin_slm.data import IGNORE_INDEX
from odin_slm.engines import Engine, TrainJob, TrainResult

log = logging.getLogger("odin_slm")
STATE_FILE = LOOP_STATE


def _optimizer(model: Any, args: Any) -> Any:
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.endswith("bias") or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )


def _save(accelerator: Any, out: Path, step: int, losses: list[dict], limit: int | None) -> Path:
    """Save under a temporary name, then rename: a kill mid-save leaves no checkpoint-N that looks usable."""
    ckpt = out / f"checkpoint-{step}"
    main = accelerator.is_main_process
    barrier = accelerator.wait_for_everyone if accelerator.num_processes > 1 else None
    with staged_dir(ckpt, main=main, barrier=barrier) as staging:
        accelerator.save_state(str(staging))
        if main:
            (staging / STATE_FILE).write_text(json.dumps({"global_step": step, "losses": losses}))
    if limit and main:
        for p in checkpoint_dirs(out)[limit:]:
            shutil.rmtree(p, ignore_errors=True)
    return ckpt


def train_loop(
    model: Any,
    train_ds: list[dict],
    collator: Callable,
    args: Any,
    stop: Any,
    resume: str | None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train ``model`` on tokenized rows."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed
    from torch.utils.data import DataLoader, RandomSampler
    from tqdm.auto import tqdm
    from transformers import TrainerControl, TrainerState, get_scheduler

    set_seed(args.seed)
    ga = args.gradient_accumulation_steps
    # Accumulation is done by hand (loss / answer tokens of the whole window), so accelerate's own
    # accumulation, which divides each micro-batch loss by the step count, stays off.
    accelerator = Accelerator(
        mixed_precision="bf16" if args.bf16 else ("fp16" if args.fp16 else "no"),
        cpu=not torch.cuda.is_available(),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.data_seed),
    )
    loader = DataLoader(
        train_ds,
        batch_size=args.per_device_train_batch_size,
        sampler=RandomSampler(train_ds),
        collate_fn=collator,
        drop_last=args.dataloader_drop_last,
    )
    steps_per_epoch = max(1, math.ceil(len(loader) / ga))
    max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    optimizer = _optimizer(model, args)
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=args.get_warmup_steps(max_steps),
        num_training_steps=max_steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs or {},
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    out = Path(args.output_dir)
    step, losses = 0, []
    if resume:
        accelerator.load_state(resume)
        state = json.loads((Path(resume) / STATE_FILE).read_text())
        step, losses = state["global_step"], state["losses"]
        log.info("Resumed the loop engine from %s at step %d", resume, step)

    trainer_state, control = TrainerState(global_step=step, max_steps=max_steps), TrainerControl()
    # As Trainer: a --logging_steps / --save_steps below 1 is a fraction of the run's steps.
    log_every, save_every = _every(args.logging_steps, max_steps), _every(args.save_steps, max_steps)
    strategy = _value(args.save_strategy)
    model.train()
    bar = tqdm(total=max_steps, initial=step, desc="train (loop)", disable=args.disable_tqdm)
    epoch = step // steps_per_epoch
    stopping = False  # read once per step: a signal during a step's save is seen at the next step
    while step < max_steps:
        loader.set_epoch(epoch)
        # Skip the micro-batches a resumed run has already trained on in this epoch.
        skip = (step - epoch * steps_per_epoch) * ga
        batches = iter(accelerator.skip_first_batches(loader, skip) if skip else loader)
        for _ in range(steps_per_epoch - (step - epoch * steps_per_epoch)):
            window = [b for _, b in zip(range(ga), batches, strict=False)]
            if not window:
                break
            n_items = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in window)
            total = 0.0
            for b in window:
                getattr(collator, "take", lambda batch: None)(b)  # count what trains (CountingCollator)
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(),
                    b["labels"][:, 1:].flatten(),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                ) / max(n_items, 1)
                accelerator.backward(loss)
                total += loss.item()
            if args.max_grad_norm and args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if (log_every and step % log_every == 0) or step == max_steps:
                losses.append({"step": step, "loss": total})
                bar.set_postfix(loss=f"{total:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            bar.update(1)
            control = _step_end(callbacks or [], args, trainer_state, step)
            stopping = bool(stop)
            last = step >= max_steps
            epoch_end = step % steps_per_epoch == 0
            # Trainer's schedule: every save_steps and at the last step ("steps"), each epoch's end ("epoch").
            save_now = (strategy == "steps" and save_every > 0 and (step % save_every == 0 or last)) or (
                strategy == "epoch" and (epoch_end or last)
            )
            if stopping or save_now or control.should_save:
                _save(accelerator, out, step, losses, args.save_total_limit)
            if stopping or control.should_training_stop or last:
                break
        if stopping or control.should_training_stop:
            break
        epoch += 1
    bar.close()
    return TrainResult(
        model=accelerator.unwrap_model(model),
        global_step=step,
        losses=losses,
        log_history=list(losses),
        train_sequences=len(train_ds),
        interrupted=stopping,
    )


def _every(value: float, max_steps: int) -> int:
    """Trainer's reading of --logging_steps / --save_steps: below 1, a fraction of max_steps (0: never)."""
    if value is None or value <= 0:
        return 0
    return math.ceil(max_steps * value) if value < 1 else int(value)


def _step_end(callbacks: list[Any], args: Any, state: Any, step: int) -> Any:
    """Call each callback's ``on_step_end`` as Trainer does; returns the resulting TrainerControl."""
    from transformers import TrainerControl

    state.global_step = step
    control = TrainerControl()
    for callback in callbacks:
        control = callback.on_step_end(args, state, control) or control
    return control


_USE_TRL = "use --engine trl."
_REFUSED = "the loop engine does not report or evaluate; " + _USE_TRL


def _value(option: Any) -> Any:
    return getattr(option, "value", option)  # enum options print as their value


class LoopEngine(Engine):
    name = "loop"

    def check(self, script: Any, model_args: Any, args: Any) -> None:
        reports = args.report_to if isinstance(args.report_to, list) else [args.report_to]
        reports = [_value(r) for r in reports if r and _value(r) != "none"]
        if reports:
            raise ConfigError(f"--report_to {' '.join(reports)}: {_REFUSED}")
        if _value(args.eval_strategy) != "no":
            raise ConfigError(f"--eval_strategy {_value(args.eval_strategy)}: {_REFUSED}")
        if getattr(args, "eval_on_start", False):
            raise ConfigError(f"--eval_on_start true: {_REFUSED}")
        if _value(args.save_strategy) == "best":
            raise ConfigError(f"--save_strategy best: {_REFUSED}")
        if getattr(args, "packing", False):
            raise ConfigError(f"--packing true: the loop engine trains on unpacked rows; {_USE_TRL}")
        if getattr(args, "push_to_hub", False):
            raise ConfigError(f"--push_to_hub true: the loop engine does not push to the Hub; {_USE_TRL}")

    def train(self, job: TrainJob) -> TrainResult:
        return train_loop(
            job.model, job.train_rows, job.collator, job.args, job.stop, job.resume, callbacks=job.callbacks
        )
