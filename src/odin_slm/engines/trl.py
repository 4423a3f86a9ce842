"""The ``trl`` engine: TRL's ``SFTTrainer`` on odin's tokenized rows.

With ``--packing`` TRL packs the rows itself (``packing_strategy``, default best-fit decreasing,
padding-free): the trainer then uses TRL's own collator, which odin wraps to count the tokens.
With ``--push_to_hub`` the Trainer creates the repository when it starts and pushes as it saves;
the final push (:func:`push`) runs after odin has written its outputs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from odin_slm.config import ConfigError
from odin_slm.data import pad_multiple
from odin_slm.engines import Engine, TrainJob, TrainResult

log = logging.getLogger("odin_slm")


def _stop_on_signal(stop: Any) -> Any:
    """A callback that saves a checkpoint and stops once SIGINT/SIGTERM arrived."""
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        fired = False  # the Trainer stopped for the signal, saving this step's checkpoint

        def on_step_end(self, _args: Any, _state: Any, control: Any, **_kw: Any) -> Any:
            if stop:
                control.should_save = True
                control.should_training_stop = True
                self.fired = True
            return control

    return StopOnSignal()


def _counting_steps(trainer_cls: type, counter: Any) -> type:
    """A subclass that adds the counts DataLoader workers attach to training batches (``CountingCollator``)."""

    class CountingSteps(trainer_cls):  # type: ignore[misc,valid-type]
        def training_step(self, model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            counter.take(inputs)  # before the model: it takes no such argument
            return super().training_step(model, inputs, *args, **kwargs)

    CountingSteps.__name__ = CountingSteps.__qualname__ = trainer_cls.__name__
    return CountingSteps


def _counting_train_loader(trainer_cls: type, counter: Any) -> type:
    """A subclass whose training batches (only those) go through ``counter``, wrapping TRL's own collator."""

    class CountingTrainer(trainer_cls):  # type: ignore[misc,valid-type]
        def get_train_dataloader(self) -> Any:
            inner = self.data_collator
            counter.inner, self.data_collator = inner, counter
            try:
                return super().get_train_dataloader()
            finally:
                self.data_collator = inner

    CountingTrainer.__name__ = CountingTrainer.__qualname__ = trainer_cls.__name__
    return CountingTrainer


class TrlEngine(Engine):
    name = "trl"

    def trainer_class(self) -> type:
        from trl import SFTTrainer

        return SFTTrainer

    def train(self, job: TrainJob) -> TrainResult:
        from datasets import Dataset

        from odin_slm.metrics import deferred_metrics

        args = job.args
        # TRL's per-step metrics are gathered when the Trainer logs, not at every step (same values);
        # ODIN_DEFER_METRICS=0 keeps TRL's per-step gathers (for comparing the two).
        trainer_cls = self.trainer_class()
        if os.environ.get("ODIN_DEFER_METRICS", "1") != "0":
            trainer_cls = deferred_metrics(trainer_cls)
        plan = None
        if job.fast_levers:  # CUDA only (the recipe checks); a lever that breaks falls back to the plain path
            try:
                from odin_slm import fast

                keep = fast.kept_from_run(args, lora=job.lora)  # e.g. the run's gradient checkpointing
                plan = fast.tune(
                    job.model, args, lora=job.lora, **keep
                )  # the model already carries its adapters
                inner = getattr(job.collator, "inner", job.collator)
                if hasattr(inner, "pad_to_multiple_of"):  # odin's own collator pads as the levers ask
                    inner.pad_to_multiple_of = pad_multiple(args)
                trainer_cls = fast.trainer_class(trainer_cls)
                log.info("fast levers: %s", plan)
            except Exception as exc:  # a lever that breaks must not stop training
                log.warning("fast levers unavailable, plain SFTTrainer: %s: %s", type(exc).__name__, exc)
                plan = {"error": f"{type(exc).__name__}: {exc}"}
        trainer_cls = _counting_steps(trainer_cls, job.collator)
        packing = bool(getattr(args, "packing", False))
        if packing:
            # TRL packs the rows and pads them with its own (padding-free) collator, which refuses another.
            trainer_cls = _counting_train_loader(trainer_cls, job.collator)
        on_signal = _stop_on_signal(job.stop)
        trainer = trainer_cls(
            model=job.model,
            args=args,
            train_dataset=Dataset.from_list(job.train_rows),
            eval_dataset=Dataset.from_list(job.eval_rows) if job.eval_rows else None,
            processing_class=job.tokenizer,
            data_collator=None if packing else job.collator,
            # The run's own callbacks see each step first: one that asks to stop is honoured at once.
            callbacks=[*job.callbacks, on_signal],
        )
        if packing and "labels" not in trainer.train_dataset.column_names:
            raise ConfigError(
                "--packing: this trl packs input_ids only and would train on the prompts too; "
                "upgrade trl (pip install -U trl) or leave --packing off."
            )
        if hasattr(trainer, "wait_after_train"):
            trainer.wait_after_train = False  # the recipe waits for the last checkpoint after its exact match
        trainer.train(resume_from_checkpoint=job.resume)
        history = trainer.state.log_history
        fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
        return TrainResult(
            model=trainer.model,
            global_step=trainer.state.global_step,
            losses=[{"step": e["step"], "loss": e["loss"]} for e in history if "loss" in e],
            eval_losses=[
                {"step": e["step"], "eval_loss": e["eval_loss"]} for e in history if "eval_loss" in e
            ],
            log_history=list(history),
            train_sequences=len(trainer.train_dataset),
            # FSDP leaves each rank a shard of the weights: every rank takes part in gathering a full
            # copy onto rank 0 (an empty dict elsewhere), from which rank 0 rebuilds a plain model.
            full_state_dict=trainer.accelerator.get_state_dict(trainer.model) if fsdp else None,
            fast=plan.as_dict() if hasattr(plan, "as_dict") else plan,
            trainer=trainer,
            interrupted=on_signal.fired,
        )


def push(result: TrainResult, commit_message: str = "End of training") -> str:
    """Push the trained model, tokenizer, model card and the run's outputs with ``Trainer.push_to_hub``.

    Every rank calls it (the Trainer saves on the main process and uploads from there).
    """
    trainer = result.trainer
    info = trainer.push_to_hub(commit_message=commit_message, blocking=True)
    return str(getattr(info, "commit_url", None) or getattr(info, "oid", "") or trainer.hub_model_id)
