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


def _safetensors_header(path: Path) -> dict:
    """The tensor names and shapes of a safetensors file, read from its JSON header (no weights)."""
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size)) if 0 < size < 1 << 28 else {}
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def checkpoint_lora_rank(folder: Path) -> tuple[bool, int | None] | None:
    """(LoRA?, rank) of the weights in a checkpoint, or None when its files do not say.

    Trainer saves a LoRA run as ``adapter_model.*`` with ``adapter_config.json``; accelerate's
    ``save_state`` (the loop engine) saves the whole PEFT model, whose tensor names hold ``lora_A``.
    """
    if any(p.name.startswith("adapter_model") for p in folder.iterdir()):
        try:
            rank = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("r")
        except (OSError, ValueError, AttributeError):
            rank = None
        return True, rank if isinstance(rank, int) else None
    weights = sorted(folder.glob("model*.safetensors"))
    if not weights:
        return None
    shapes = [v.get("shape") for k, v in _safetensors_header(weights[0]).items() if ".lora_A." in k]
    if shapes:
        return True, shapes[0][0] if shapes[0] else None
    return (False, None) if _safetensors_header(weights[0]) else None


def check_resume_fits(resume: str | None, engine: str, use_peft: bool, lora_r: int) -> None:
    """Refuse a checkpoint that this run's engine or method cannot continue, before the model load.

    Trainer (trl and unsloth engines) and the loop engine save different checkpoints, and a LoRA
    checkpoint holds an adapter of one rank where a full fine-tune's holds the whole model: resuming
    across them crashes in the optimizer or file loading, after the model load.
    """
    if not resume:
        return
    folder = Path(resume)
    saved_by = "loop" if (folder / LOOP_STATE).is_file() else "trl"
    if (saved_by == "loop") != (engine == "loop"):
        raise CheckpointError(
            f"--resume_from_checkpoint {resume} was saved by the "
            f"{'loop engine' if saved_by == 'loop' else 'Trainer (engine trl or unsloth)'}, "
            f"which --engine {engine} cannot continue: resume with "
            f"{'--engine loop' if saved_by == 'loop' else '--engine trl'}, or start a new run in another --output_dir."
        )
    kind = checkpoint_lora_rank(folder)
    if kind is None:
        return
    lora, rank = kind
    if lora != bool(use_peft):
        raise CheckpointError(
            f"--resume_from_checkpoint {resume} holds {'a LoRA adapter' if lora else 'a full fine-tune'}, "
            f"but this run has --use_peft {str(bool(use_peft)).lower()}: resume with "
            f"--use_peft {str(lora).lower()}, or start a new run in another --output_dir."
        )
    if lora and rank is not None and rank != lora_r:
        raise CheckpointError(
            f"--resume_from_checkpoint {resume} holds a LoRA adapter of rank {rank}, but this run has "
            f"--lora_r {lora_r}: resume with --lora_r {rank}, or start a new run in another --output_dir."
        )


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
