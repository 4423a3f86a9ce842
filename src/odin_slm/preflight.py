"""Checks that run before the (slow) model load: numbers that cannot work, and the output folder.

A mistake found here costs the user a second, not a model load; each message names the flag.
An ``output_dir`` that holds another run's outputs is refused unless the user resumes that run
(``--resume_from_checkpoint``) or replaces it (``--overwrite_output_dir``), as in HF's examples:
two runs in one folder would share checkpoint rotation, ``latest`` and ``metrics.json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from odin_slm.checkpoints import STAGING_SUFFIX, checkpoint_dirs, remove_path
from odin_slm.config import ConfigError

log = logging.getLogger("odin_slm")

# Files and folders that odin writes into output_dir, besides checkpoint-N folders.
RUN_OUTPUTS = ("metrics.json", "environment.json", "loss.png", "final")


def check_numbers(script: Any, args: Any, model_args: Any = None) -> None:
    """Reject values that would crash after the model load, or silently do something else."""
    # -1 is HF's "unset: train --num_train_epochs"; Trainer reads 0 and other negatives the same way.
    epochs_only = args.max_steps == -1
    rules = [
        ("per_device_train_batch_size", args, lambda v: v >= 1, "at least 1"),
        ("per_device_eval_batch_size", args, lambda v: v >= 1, "at least 1"),
        ("learning_rate", args, lambda v: v >= 0, "0 or more"),
        ("gradient_accumulation_steps", args, lambda v: v >= 1, "at least 1"),
        ("max_steps", args, lambda v: v >= 1 or v == -1, "positive, or -1 to train for --num_train_epochs"),
        ("num_train_epochs", args, lambda v: v > 0 or not epochs_only, "positive when --max_steps is -1"),
        ("max_length", args, lambda v: v is None or v >= 1, "at least 1"),
        ("eval_samples", script, lambda v: v >= 0, "0 (no eval) or more"),
        ("eval_max_new_tokens", script, lambda v: v >= 1, "at least 1"),
    ]
    if model_args is not None and model_args.use_peft:
        rules.append(("lora_r", model_args, lambda v: v >= 1, "at least 1 with --use_peft"))
    problems = [
        f"--{flag} must be {rule}, not {getattr(owner, flag)}."
        for flag, owner, ok, rule in rules
        if not ok(getattr(owner, flag))
    ]
    if problems:
        raise ConfigError("\n  ".join(problems))


def check_writable(output_dir: str) -> None:
    """``output_dir`` must be a folder we can write in, or a path we can create."""
    out = Path(output_dir).expanduser()
    existing = out
    while not existing.exists():  # the folder is created later: check the nearest existing parent
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == out else f"cannot be created: {existing} is a file"
        raise ConfigError(f"--output_dir {output_dir} {where}; pass a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output_dir {output_dir}: {existing} is not writable; pass a folder you can write in."
        )


def previous_run(output_dir: str) -> list[Path]:
    """What an earlier run left in ``output_dir``: checkpoints (oldest first), metrics, model, leftovers."""
    out = Path(output_dir).expanduser()
    if not out.is_dir():
        return []
    found = checkpoint_dirs(out)[::-1]
    found += [out / name for name in RUN_OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
    found += sorted(out.glob(f".*{STAGING_SUFFIX}"))  # saves that a kill interrupted
    found += sorted(p for name in RUN_OUTPUTS for p in out.glob(f".{name}.*.tmp"))
    return found


def check_reuse(output_dir: str, resume: str | None, overwrite: bool) -> list[Path]:
    """Refuse an output_dir with another run's outputs; return what --overwrite_output_dir will remove."""
    found = previous_run(output_dir)
    if not found:
        return []
    if resume:
        if overwrite:
            log.warning("--overwrite_output_dir is ignored with --resume_from_checkpoint: the run continues.")
        return []
    if overwrite:
        return found
    names = ", ".join(p.name for p in found[:6]) + (", ..." if len(found) > 6 else "")
    raise ConfigError(
        f"--output_dir {output_dir} already holds another run's outputs ({names}).\n"
        "  To continue that run: --resume_from_checkpoint latest\n"
        "  To replace it: --overwrite_output_dir\n"
        "  Or pass another --output_dir."
    )


def clear_previous_run(found: list[Path]) -> None:
    """Remove an earlier run's outputs (asked for with --overwrite_output_dir), so that none is mixed in."""
    if not found:
        return
    log.warning(
        "--overwrite_output_dir: removing the earlier run's outputs from %s: %s",
        found[0].parent,
        ", ".join(p.name for p in found),
    )
    for path in found:
        remove_path(path)


def check_hub(args: Any) -> None:
    """--push_to_hub needs the Hub: refuse it at once when HF_HUB_OFFLINE is set, before anything trains."""
    if not getattr(args, "push_to_hub", False):
        return
    from odin_slm.model import hub_offline

    if hub_offline():
        raise ConfigError(
            "--push_to_hub true needs the Hugging Face Hub, but HF_HUB_OFFLINE is set.\n"
            "  Unset HF_HUB_OFFLINE (and log in: hf auth login, or pass --hub_token), "
            "or train without --push_to_hub and upload output_dir/final later with: hf upload <repo> <folder>"
        )


def _value(option: Any) -> Any:
    return getattr(option, "value", option)  # enum options print as their value


def check_evaluation(args: Any) -> bool:
    """Options that need an evaluation pass; True when the run evaluates (the eval rows must exist).

    ``--eval_on_start`` evaluates even with ``--eval_strategy no``; ``--save_strategy best`` keeps
    the checkpoints where ``--metric_for_best_model`` improved, a metric that only evaluation gives.
    """
    evaluating = _value(args.eval_strategy) != "no" or bool(getattr(args, "eval_on_start", False))
    if _value(args.save_strategy) == "best":
        if not evaluating:
            raise ConfigError(
                "--save_strategy best saves when --metric_for_best_model improves, which evaluation gives: "
                "add --eval_strategy steps (or epoch) and eval data."
            )
        if not getattr(args, "metric_for_best_model", None):
            raise ConfigError("--save_strategy best needs --metric_for_best_model (for example eval_loss).")
    return evaluating


def check_reporting(args: Any) -> None:
    """--report_to: names that transformers knows, whose packages are installed (else Trainer fails late)."""
    reports = args.report_to if isinstance(args.report_to, list) else [args.report_to]
    reports = [_value(r) for r in reports if r and _value(r) != "none"]
    if not reports:
        return
    from transformers.integrations import get_reporting_integration_callbacks

    try:
        callbacks = get_reporting_integration_callbacks(reports)
    except ValueError as exc:
        raise ConfigError(f"--report_to {' '.join(reports)}: {exc}") from None
    for callback in callbacks:
        try:
            callback()  # each integration's callback checks that its package is installed
        except (ImportError, RuntimeError) as exc:
            raise ConfigError(f"--report_to {' '.join(reports)}: {exc}") from None
