"""TRL's per-step training metrics, gathered at logging time instead of at every step.

TRL 1.16's ``SFTTrainer.compute_loss`` gathers the batch's entropy, top-1 accuracy and token counts
across ranks and calls ``.item()`` on each, at every micro-batch. Each ``.item()`` makes the host wait for
the GPU, and under DDP each gather makes every rank wait for the slowest, so a short step (a small
model, a small batch) spends much of its time waiting. :func:`deferred_metrics` keeps those per-step
values on the device and gathers them all at once when the Trainer logs. The logged values are the
same: each step's ratio over all ranks, averaged over the steps since the last log, and the running
token count.

Only the training loss of TRL's standard path is taken over (``loss_type="nll"``, no
``compute_loss_func``, label smoothing, MoE auxiliary loss or sequence parallelism, not the last batch
of an epoch, where accelerate may drop duplicated samples from the gather); everything else,
evaluation included, is TRL's own ``compute_loss``. Other TRL versions get TRL's own code.
"""

from __future__ import annotations

from typing import Any

# The TRL releases whose SFTTrainer.compute_loss this mirrors (its fused-LM-head path and `_metrics`).
TRL_RANGE = (">=1.16.0", "<1.17.0")


def supported(trl_version: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return trl_version in SpecifierSet(",".join(TRL_RANGE))


def deferred_metrics(base: type) -> type:
    """A subclass of ``base`` (TRL's ``SFTTrainer`` or a subclass) that gathers its metrics when it logs."""
    import trl

    own = getattr(base.compute_loss, "__qualname__", "") == "SFTTrainer.compute_loss" and (
        base.compute_loss.__module__ == "trl.trainer.sft_trainer"
    )
    if not own or not supported(trl.__version__):  # a patched SFTTrainer (unsloth), another TRL: untouched
        return base

    class DeferredMetrics(base):  # type: ignore[misc,valid-type]
        _odin_pending: list[tuple[Any, Any, Any, Any]]

        def _odin_deferrable(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> bool:
            parallelism = getattr(self.accelerator, "parallelism_config", None)
            return (
                model.training
                and not return_outputs
                and self.compute_loss_func is None
                and self.label_smoother is None
                and self.args.loss_type == "nll"
                and not self.aux_loss_enabled
                and not (parallelism is not None and getattr(parallelism, "sp_enabled", False))
                and not self.accelerator.gradient_state.end_of_dataloader
                and ("attention_mask" in inputs or "position_ids" in inputs)
            )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            if not self._odin_deferrable(model, inputs, return_outputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch

            # TRL's standard loss, line for line (trl 1.16 SFTTrainer.compute_loss).
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            per_token_loss = -outputs.log_probs
            num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = per_token_loss.sum() / torch.as_tensor(num_tokens).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())

            # The metrics' local sums stay on the device until the next log.
            if "attention_mask" in inputs:
                local_tokens = inputs["attention_mask"].sum()
            else:  # padding-free: position_ids
                local_tokens = torch.tensor(
                    inputs["position_ids"].size(1), device=inputs["position_ids"].device
                )
            pending = self.__dict__.setdefault("_odin_pending", [])
            pending.append(
                (
                    outputs.label_mask.sum(),
                    outputs.entropy.detach().sum(),
                    outputs.is_top1.sum(),
                    local_tokens,
                )
            )
            return loss

        def _odin_flush(self) -> None:
            pending = self.__dict__.get("_odin_pending")
            if not pending:
                return
            import torch

            self._odin_pending = []
            gather = self.accelerator.gather
            # One gather per quantity for all pending steps: (ranks * steps,) -> summed over ranks.
            steps = len(pending)
            valid, entropy, correct, tokens = (
                gather(torch.stack([row[i] for row in pending])).reshape(-1, steps).sum(0) for i in range(4)
            )
            for i in range(steps):
                ok = bool(valid[i] > 0)
                self._metrics["train"]["entropy"].append((entropy[i] / valid[i]).item() if ok else 0.0)
                self._metrics["train"]["mean_token_accuracy"].append(
                    (correct[i] / valid[i]).item() if ok else 0.0
                )
                self._total_train_tokens += int(tokens[i].item()) // self._tp_size
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            self._odin_flush()
            super().log(logs, start_time)

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            self._odin_flush()  # TRL's eval metrics read the running token count
            return super().evaluate(*args, **kwargs)

        def _save_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
            # Save with every step's metrics accounted for, as TRL's own trainer would have them.
            self._odin_flush()
            return super()._save_checkpoint(*args, **kwargs)

    DeferredMetrics.__name__ = DeferredMetrics.__qualname__ = base.__name__
    return DeferredMetrics
