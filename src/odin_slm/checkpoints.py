"""Checkpoints that count: only complete ones are resumed from.

A process killed during a save (``kill -9``, a lost node) leaves ``checkpoint-N/`` empty or
partial. Each engine writes its state file last (Trainer's ``trainer_state.json``, the loop's
``odin_loop_state.json``), so a checkpoint is complete when that file parses and weights are there.
The loop engine also writes each checkpoint under a temporary name and renames it into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("odin_slm")

PREFIX = "checkpoint"  # transformers' PREFIX_CHECKPOINT_DIR
LOOP_STATE = "odin_loop_state.json"
STATE_FILES = ("trainer_state.json", LOOP_STATE)
# Trainer writes adapter_model.* or model*.safetensors; accelerate's save_state model*.safetensors,
# pytorch_model*.bin, or pytorch_model_fsdp_* folders.
WEIGHT_PREFIXES = ("adapter_model", "model", "pytorch_model")
STAGING_SUFFIX = ".partial"
_CHECKPOINT = re.compile(rf"^{PREFIX}-(\d+)$")


class CheckpointError(Exception):
    """No usable checkpoint where the user asked to resume; the message says what to do."""


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when it is."""
    states = [folder / name for name in STATE_FILES if (folder / name).is_file()]
    if not states:
        return f"no {' or '.join(STATE_FILES)}"
    try:
        state = json.loads(states[0].read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{states[0].name} is cut short"
    if not isinstance(state, dict) or "global_step" not in state:
        return f"{states[0].name} has no global_step"
    if not any(p.name.startswith(WEIGHT_PREFIXES) for p in folder.iterdir()):
        return "no weights"
    return None


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, newest (highest N) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def latest_complete(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint; incomplete newer ones are skipped with a warning."""
    for folder in checkpoint_dirs(output_dir):
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        log.warning(
            "Skipping %s: the checkpoint is incomplete (%s), probably an interrupted save. "
            "It is safe to delete.",
            folder,
            reason,
        )
    return None


def resolve_resume(value: Any, output_dir: str) -> str | None:
    """--resume_from_checkpoint: a folder, or true/latest for the newest complete checkpoint in output_dir."""
    if value in (None, "", False, "false", "False"):
        return None
    if value in (True, "true", "True", "latest"):
        last = latest_complete(output_dir)
        if last is None:
            raise CheckpointError(
                f"--resume_from_checkpoint {value}: no checkpoint to resume in {output_dir} "
                "(it has no complete checkpoint-* folder)."
            )
        return str(last)
    folder = Path(value)
    if not folder.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint: {value} is not a checkpoint folder.")
    reason = incomplete_reason(folder)
    if reason is not None:
        raise CheckpointError(
            f"--resume_from_checkpoint: {value} is incomplete ({reason}), probably an interrupted save. "
            "Pass an earlier checkpoint, or `latest` for the newest complete one."
        )
    return str(folder)


def remove_path(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged_dir(target: Path, *, main: bool = True, barrier: Any = None) -> Iterator[Path]:
    """Write a folder under a temporary name beside ``target``; rename it into place when complete.

    ``target`` then never holds half a save. One process gets a fresh ``mkdtemp`` name. Several
    processes writing into one folder (accelerate's save_state) pass ``barrier``: they share a
    name derived from ``target``, which ``main`` clears, creates and finally renames.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if barrier is None:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent))
    else:
        staging = target.with_name(f".{target.name}{STAGING_SUFFIX}")
        if main:
            if staging.exists() or staging.is_symlink():
                remove_path(staging)  # left by an interrupted save
            staging.mkdir()
        barrier()
    try:
        yield staging
        if barrier:
            barrier()
        if main:
            os.chmod(staging, 0o755)  # mkdtemp makes it private
            if target.exists() or target.is_symlink():
                remove_path(target)  # a resumed run saving the same step again
            os.replace(staging, target)
        if barrier:
            barrier()
    finally:
        if main and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
