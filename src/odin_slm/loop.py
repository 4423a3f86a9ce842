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
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Train ``model`` on tokenized rows; returns {"losses", "global_step", "model"}."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed
    from torch.utils.data import DataLoader, RandomSampler
    from tqdm.auto import tqdm
    from transformers import get_scheduler

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

    model.train()
    bar = tqdm(total=max_steps, initial=step, desc="train (loop)", disable=args.disable_tqdm)
    epoch = step // steps_per_epoch
    while step < max_steps:
        loader.set_epoch(epoch)
        # Skip the micro-batches a resumed run has already trained on in this epoch.
        skip = (step - epoch * steps_per_epoch) * ga
        batches = iter(accelerator.skip_first_batches(loader, skip) if skip else loader)
        for _ in range(steps_per_epoch - (step - epoch * steps_per_epoch)):
            window = [b for _, b in zip(range(ga), batches, strict=False)]
            if not window:
                break
            n_items = sum(int((b["labels"][:, 1:] != -100).sum()) for b in window)
            total = 0.0
            for b in window:
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(),
                    b["labels"][:, 1:].flatten(),
                    ignore_index=-100,
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
            if step % max(1, int(args.logging_steps)) == 0 or step == max_steps:
                losses.append({"step": step, "loss": total})
                bar.set_postfix(loss=f"{total:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            bar.update(1)
            if on_step:
                on_step(step)
            save_now = args.save_strategy == "steps" and args.save_steps and step % int(args.save_steps) == 0
            if stop or save_now:
                _save(accelerator, out, step, losses, args.save_total_limit)
            if stop or step >= max_steps:
                break
        if stop:
            break
        epoch += 1
    bar.close()
    return {"losses": losses, "global_step": step, "model": accelerator.unwrap_model(model)}
