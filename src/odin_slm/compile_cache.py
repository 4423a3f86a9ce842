"""The compiled layers' compile caches, kept in odin's cache directory from one run to the next.

Inductor keeps its caches under the system's temporary directory (``TORCHINDUCTOR_CACHE_DIR``), which a
new container, a new cloud machine or a reboot starts empty: the run then compiles its layers again
(several seconds on the first step). odin writes what a run compiled as one artifact
(``torch.compiler.save_cache_artifacts``) to ``$ODIN_CACHE/compile/`` and loads it before the next run
of the same shape compiles (``torch.compiler.load_cache_artifacts``), so that only the first run with
an empty ``$ODIN_CACHE`` compiles from scratch. The artifact's entries are keyed by torch itself
(torch, Triton and CUDA versions, the GPU, the graph): an entry that does not match is not used, and
the run compiles as it would without it.

torch's own switch turns it off: ``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("odin_slm")


def enabled() -> bool:
    """False where the user turned torch's compile caches off (then there is nothing to keep)."""
    return os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "0") not in ("1", "true", "True")


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
        os.replace(tmp, path)  # a reader never sees half a file
        return True
    except Exception as exc:  # the run goes on; only the next run's compile is not saved
        log.warning("compile cache not saved to %s (%s: %s)", path, type(exc).__name__, exc)
        return False


def saver(path: Path) -> Any:
    """A TrainerCallback that saves the artifact after the first optimizer step (which compiled the layers'
    forward and backward: a run that stops or crashes later keeps it) and again at the end of training if
    the run compiled more since. Only the main process writes: every rank compiles the same graphs."""
    from transformers import TrainerCallback

    class SaveCompileCache(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1 and state.is_world_process_zero:
                save(path)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                save(path)

    return SaveCompileCache()
