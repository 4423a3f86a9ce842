"""The compiled layers' compile caches, kept in odin's cache directory from one run to the next.

Inductor keeps its caches under the system's temporary directory (``TORCHINDUCTOR_CACHE_DIR``), which a
new container, a new cloud machine or a reboot starts empty: the run then compiles its layers again
(several seconds on the first step). odin writes what a run compiled as one artifact
(``torch.compiler.save_cache_artifacts``) to a folder per run shape under ``$ODIN_CACHE/compile/``, and
the next run of that shape loads the folder's artifacts before it compiles
(``torch.compiler.load_cache_artifacts``), so that only the first run with an empty ``$ODIN_CACHE``
compiles from scratch. A run adds an artifact only where it compiled something the folder lacked. The
artifacts' entries are keyed by torch itself (torch, Triton and CUDA versions, the GPU, the graph): an
entry that does not match is not used, and the run compiles as it would without it.

torch's own switch turns it off: ``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``. An artifact holds pickled
objects and compiled kernels, which the load runs: it is loaded only from a file and a directory that
the user owns and no one else may write to (the rule ssh applies to its keys).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("odin_slm")

# Levers that change no compiled graph: left out of the artifact's name, so that turning one of them on
# or off (or a failed worker warm-up) does not start another artifact.
NOT_IN_GRAPH = (
    "warm_compile_workers",
    "non_blocking_inputs",
    "device_nan_filter",
    "dataloader_workers",
    "ddp_lean",
    "async_save",
)
# The run's settings that shape the compiled graphs' inputs.
SHAPING_ARGS = (
    "per_device_train_batch_size",
    "max_length",
    "pad_to_multiple_of",
    "bf16",
    "fp16",
    "gradient_checkpointing",
)

Entries = frozenset[tuple[str, str]]  # (artifact type, key) pairs, as torch's CacheInfo lists them
# Artifacts kept per shape (a run that compiled something the others lacked adds one): each costs ~0.2 s to load.
KEEP = 8


def unavailable() -> str:
    """Why this run keeps no compile cache ("" where it does): the user turned torch's caches off, or
    this torch has no cache artifacts (before 2.7)."""
    if os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "0") in ("1", "true", "True"):
        return "TORCHINDUCTOR_FORCE_DISABLE_CACHES is set"
    import torch

    if not hasattr(torch.compiler, "load_cache_artifacts"):
        return f"torch {torch.__version__} has no cache artifacts (2.7 or later)"
    return ""


def _only_users(st: os.stat_result) -> bool:
    """Owned by this user, and no one else may write to it."""
    if not hasattr(os, "getuid"):  # Windows: no owner bits to check
        return True
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def artifact_dir(model: Any, args: Any, *, levers: list[str]) -> Path:
    """Where the artifacts of runs of this shape live: one folder per torch, GPU, model architecture,
    trainable weights (full, or LoRA's rank and targets), the settings that shape the inputs, and the
    levers that change the graphs."""
    import torch

    from odin_slm.model import cache_root

    config = getattr(model, "config", None)
    arch = config.to_dict() if hasattr(config, "to_dict") else {}
    for key in ("_name_or_path", "transformers_version"):  # where it was loaded from changes no graph
        arch.pop(key, None)
    shape = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "model": arch,
        "trainable": [
            (n, tuple(p.shape), str(p.dtype)) for n, p in model.named_parameters() if p.requires_grad
        ],
        "args": {k: getattr(args, k, None) for k in SHAPING_ARGS},
        "levers": sorted(lever for lever in levers if not lever.startswith(NOT_IN_GRAPH)),
    }
    try:
        text = json.dumps(shape, sort_keys=True, default=str)
    except TypeError:  # a config dict whose keys do not sort (int and str): its own order is stable
        text = json.dumps(shape, default=str)
    return cache_root() / "compile" / hashlib.sha256(text.encode()).hexdigest()[:20]


def _entries(info: Any) -> Entries:
    return frozenset((kind, key) for kind, keys in info.artifacts.items() for key in keys)


def _read(path: Path) -> bytes | None:
    """The file's bytes if the user owns it and alone may write it; opened without following a link and
    checked on what was opened, so that the file checked is the file read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or not _only_users(st):
            log.warning("compile cache %s not loaded: another user owns it or may write to it", path)
            return None
        return f.read()


def _artifacts(folder: Path) -> list[Path]:
    """The folder's artifacts, newest first."""
    return sorted(folder.glob("*.bin"), key=lambda p: p.lstat().st_mtime, reverse=True)


def load(folder: Path) -> dict[str, Entries]:
    """Fill torch's compile caches from the artifacts in ``folder`` (the newest ``KEEP``); the entries each
    file held, by name (empty: nothing there).

    Never raises: an artifact that cannot be read only costs the compile it would have saved."""
    loaded: dict[str, Entries] = {}
    try:
        if not folder.exists():
            return loaded
        if not _only_users(folder.stat()):
            log.warning("compile cache %s not loaded: another user owns it or may write to it", folder)
            return loaded
        import torch

        for path in _artifacts(folder)[:KEEP]:
            try:
                data = _read(path)
                info = None if data is None else torch.compiler.load_cache_artifacts(data)
            except Exception as exc:
                log.warning("compile cache %s not loaded (%s: %s)", path, type(exc).__name__, exc)
                continue
            if info is not None:  # None: torch could not read it (it logged why)
                loaded[path.name] = _entries(info)
    except Exception as exc:
        log.warning("compile cache %s not loaded (%s: %s)", folder, type(exc).__name__, exc)
    return loaded


def save(folder: Path, name: str, loaded: dict[str, Entries] | None = None) -> bool:
    """Write every compile cache entry this process made or used to ``folder/name`` (atomically); True if
    written. Nothing is written where the process used only entries that the artifacts it loaded held
    (``loaded``, from :func:`load`). Other artifacts stay, except those this one holds all of, and
    beyond the newest ``KEEP``: a run never drops entries that another run of the shape needed."""
    loaded = loaded or {}
    try:
        import torch

        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return False
        entries = _entries(saved[1])
        if entries <= frozenset().union(*loaded.values()):
            return False
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _only_users(folder.stat()):
            log.warning("compile cache not saved: another user owns %s or may write to it", folder)
            return False
        from odin_slm.report import atomic_file

        with atomic_file(folder / name, "wb", perms=0o600) as f:  # a reader never sees half a file
            f.write(saved[0])
        superseded = [other for other, held in loaded.items() if other != name and held <= entries]
        for path in [folder / other for other in superseded] + _artifacts(folder)[KEEP:]:
            path.unlink(missing_ok=True)
        return True
    except Exception as exc:  # the run goes on; only the next run's compile is not saved
        log.warning("compile cache not saved to %s (%s: %s)", folder, type(exc).__name__, exc)
        return False


def saver(folder: Path, loaded: dict[str, Entries] | None = None) -> Any:
    """A TrainerCallback that saves this run's artifact (one file per run and rank: ranks whose batches
    differ in length compile graphs of their own) after the run's first optimizer step, which compiled the
    layers' forward and backward, at each checkpoint (graphs for new row lengths come later), and at the
    end of training. Each save rewrites the run's own file with all it holds so far."""
    from transformers import TrainerCallback

    name = f"{uuid.uuid4().hex[:16]}.bin"

    class SaveCompileCache(TrainerCallback):
        first = True
        odin_reads_checkpoints = False  # async_save: its on_save and on_train_end do not read the checkpoint

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.first:
                save(folder, name, loaded)
            self.first = False

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            save(folder, name, loaded)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            save(folder, name, loaded)

    return SaveCompileCache()
