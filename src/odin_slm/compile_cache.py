"""The compiled layers' compile caches, kept in odin's cache directory from one run to the next.

Inductor keeps its caches under the system's temporary directory (``TORCHINDUCTOR_CACHE_DIR``), which a
new container, a new cloud machine or a reboot starts empty: the run then compiles its layers again
(several seconds on the first step). odin writes what a run compiled as one artifact
(``torch.compiler.save_cache_artifacts``) to ``$ODIN_CACHE/compile/`` and loads it before the next run
of the same shape compiles (``torch.compiler.load_cache_artifacts``), so that only the first run with
an empty ``$ODIN_CACHE`` compiles from scratch. The artifact's entries are keyed by torch itself
(torch, Triton and CUDA versions, the GPU, the graph): an entry that does not match is not used, and
the run compiles as it would without it.

torch's own switch turns it off: ``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``. An artifact is loaded only if the
user owns it and no one else may write to it (it holds pickled objects and compiled kernels).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("odin_slm")


def unavailable() -> str:
    """Why this run keeps no compile cache ("" where it does): the user turned torch's caches off, or
    this torch has no cache artifacts (before 2.7)."""
    if os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "0") in ("1", "true", "True"):
        return "TORCHINDUCTOR_FORCE_DISABLE_CACHES is set"
    import torch

    if not hasattr(torch.compiler, "load_cache_artifacts"):
        return f"torch {torch.__version__} has no cache artifacts (2.7 or later)"
    return ""


def _trusted(path: Path) -> bool:
    """Whether ``path`` is the user's own and only theirs to write: an artifact holds pickled objects and
    compiled kernels, which the load runs (the rule ssh applies to its keys)."""
    if not hasattr(os, "getuid"):  # Windows: no owner bits to check
        return True
    st = path.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def artifact_path(model: Any, *, lora: bool, levers: list[str]) -> Path:
    """Where the artifact of runs of this shape lives: one file per torch, GPU, model architecture, LoRA or
    not, and the levers that were on (another shape's run would overwrite it with entries this one misses)."""
    import torch

    from odin_slm.model import cache_root

    config = getattr(model, "config", None)
    arch = config.to_dict() if hasattr(config, "to_dict") else {}
    for key in ("_name_or_path", "transformers_version"):  # where it was loaded from changes no graph
        arch.pop(key, None)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    shape = {"torch": torch.__version__, "gpu": gpu, "model": arch, "lora": lora, "levers": sorted(levers)}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_root() / "compile" / f"{digest}.bin"


def load(path: Path) -> int:
    """Fill torch's compile caches from the artifact at ``path``; how many entries it held (0: none there).

    Never raises: an artifact that cannot be read only costs the compile it would have saved."""
    if not path.is_file():
        return 0
    if not _trusted(path):
        log.warning("compile cache %s not loaded: another user owns it or may write to it", path)
        return 0
    try:
        import torch

        info = torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as exc:
        log.warning("compile cache %s not loaded (%s: %s); compiling as usual", path, type(exc).__name__, exc)
        return 0
    if info is None:  # torch could not read it (it logged why)
        return 0
    return sum(len(keys) for keys in info.artifacts.values())


def save(path: Path) -> bool:
    """Write every compile cache entry this process made or used to ``path`` (atomically); True if written.

    Nothing is written where the process compiled nothing, or where ``path`` already holds the same bytes."""
    try:
        import torch

        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return False
        data = saved[0]
        if path.is_file() and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o600)  # only the user may write what a later run will load
        os.replace(tmp, path)  # a reader never sees half a file
        return True
    except Exception as exc:  # the run goes on; only the next run's compile is not saved
        log.warning("compile cache not saved to %s (%s: %s)", path, type(exc).__name__, exc)
        return False


def saver(path: Path) -> Any:
    """A TrainerCallback that saves the artifact after the run's first optimizer step (which compiled the
    layers' forward and backward: a run that stops or crashes later keeps it; a resumed run's first step
    is not step 1) and again at the end of training if the run compiled more since. Only the main process
    writes: every rank compiles the same graphs."""
    from transformers import TrainerCallback

    class SaveCompileCache(TrainerCallback):
        first = True

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.first and state.is_world_process_zero:
                save(path)
            self.first = False

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                save(path)

    return SaveCompileCache()
