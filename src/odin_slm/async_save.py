"""Checkpoints written in the background: a save holds training up only while it copies the tensors.

The Trainer writes each checkpoint inside the training loop. A full fine-tune of SmolLM2-135M saves
1.6 GB (fp32 weights and Adam's two moments), which held one H200 up for about 2 s per save.

Inside :meth:`Writer.deferred`, the Trainer's ``_save_checkpoint`` runs unchanged, except that:

- the large writes (safetensors weights; ``torch.save`` of at least 1 MiB of tensors, such as the
  optimizer state) copy their tensors off the GPU now (queued on the compute stream, so they read the
  values of this step) and are written by one background thread;
- ``trainer_state.json``, which marks a checkpoint complete (:mod:`odin_slm.checkpoints`), and the
  rotation that removes older checkpoints are queued after those writes. A process killed mid-write
  leaves the new checkpoint incomplete and the older ones in place, as a synchronous save would.

Everything else (config, tokenizer, ``training_args.bin``, RNG and scheduler states) is written at once,
as before. One checkpoint is in flight at a time: the next save waits for it, and so do the end of the run
(:meth:`Writer.wait`) and the interpreter's exit (the thread is not a daemon). A failed write raises at
the next wait. Tensors are copied only while the copies fit in half the memory the system has available;
beyond that, a write happens at once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger("odin_slm")

MIN_BYTES = 1 << 20  # smaller tensor files (RNG, scheduler) are written at once: nothing to gain
# What the Trainer calls to write, by module and name; the rotation is what must wait for the writes.
SAFETENSORS_SAVERS = (
    ("safetensors.torch", "save_file"),
    ("transformers.modeling_utils", "safe_save_file"),
    ("peft.peft_model", "safe_save_file"),
)
ROTATION = ("transformers.trainer", "rotate_checkpoints")  # transformers >= 5 (earlier: off)
# Where a CUDA tensor is copied at the save: "device" (a copy on the GPU, taken without waiting for it,
# brought to the CPU by the writer; only while it fits in half the GPU memory left, else as "pinned") or
# "pinned" (straight into pinned host memory; the loop waits for the host allocations).
MODES = ("device", "pinned")
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def unavailable() -> str | None:
    """Why checkpoints of this transformers cannot be written in the background, or None: its Trainer's
    ``_save_checkpoint`` must write the state and rotate through the names patched here (a rotation that
    ran at once could remove the previous checkpoint before the new one is complete)."""
    module = sys.modules.get(ROTATION[0])
    trainer = getattr(module, "Trainer", None)
    code = getattr(getattr(trainer, "_save_checkpoint", None), "__code__", None)
    if not callable(getattr(module, ROTATION[1], None)) or code is None:
        return "this transformers' checkpoint rotation is not known"
    if not {ROTATION[1], "save_to_json"} <= set(code.co_names):
        return "this transformers' Trainer saves through other names"
    return None


def unsupported(args: Any) -> str | None:
    """Why this run's checkpoints must be written in the loop, or None."""
    if getattr(args, "push_to_hub", False):
        return "push_to_hub uploads each checkpoint as it is saved"
    if getattr(args, "load_best_model_at_end", False) or getattr(args, "metric_for_best_model", None):
        return "the best-model tracking reads checkpoints as they are saved"
    if getattr(args, "deepspeed", None) or getattr(args, "fsdp", None):
        return "DeepSpeed and FSDP write their own checkpoints"
    return None


def reads_checkpoints(callback: Any) -> bool:
    """Whether a Trainer callback may read the checkpoint in its ``on_save`` (then the save completes
    first, as without this lever). A callback that does not says so with ``odin_reads_checkpoints = False``."""
    from transformers import TrainerCallback

    own = getattr(type(callback), "on_save", None)
    return own is not TrainerCallback.on_save and getattr(callback, "odin_reads_checkpoints", True)


def _available_bytes() -> int:
    """The memory available to this process: the system's, or less where a cgroup (a container) limits it."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            found += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else 0  # unknown: every write happens at once


_PATCHING = threading.Lock()  # one save at a time patches the writers


class _Batch:
    """The writes of one checkpoint, in the order the Trainer asked for them (on the saving thread)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.thread = threading.get_ident()
        self.jobs: list[Callable[[], Any]] = []
        self.events: list[Any] = []
        self.budget = _available_bytes() // 2

    def copy(self, tensors: list[Any]) -> list[Any] | None:
        """Copies of ``tensors`` as of now (on the GPU or in pinned memory, see ``MODES``), or None when
        they would pass the memory budget."""
        import torch

        size = sum(t.numel() * t.element_size() for t in tensors)
        if size > self.budget:
            return None
        self.budget -= size
        cuda = any(t.device.type == "cuda" for t in tensors)
        copies = None
        if cuda and self.mode == "device" and size <= _device_room() // 2:
            try:  # one device-to-device copy per tensor: the loop waits for nothing
                copies = [
                    t.detach().clone() if t.device.type == "cuda" else t.to("cpu", copy=True) for t in tensors
                ]
            except torch.cuda.OutOfMemoryError:
                copies = None
        if copies is None:
            copies = []
            try:
                for t in tensors:
                    t = t.detach()
                    if t.device.type == "cuda":
                        # Pinned, and ordered after this step's kernels on the stream; later steps write the
                        # weights after the copy has read them. The writer waits for the copy to land.
                        out = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
                        copies.append(out.copy_(t, non_blocking=True))
                    else:
                        copies.append(t.to("cpu", copy=True))
            except RuntimeError:  # no pinned (or host) memory for it: this write happens at once
                return None
        if cuda:
            event = torch.cuda.Event()
            event.record()
            self.events.append(event)
            self.device = next(t.device for t in tensors if t.device.type == "cuda")
        return copies

    def host(self, obj: Any) -> Any:
        """``obj`` with its GPU copies brought to the CPU (on the writer's thread, off the compute stream)."""
        import torch
        from torch.utils._pytree import tree_map_only

        def to_cpu(t: Any) -> Any:
            if t.device.type != "cuda":
                return t
            with torch.cuda.stream(self.stream):
                return t.to("cpu")  # pageable: returns once copied, so the GPU copy may then be freed

        return tree_map_only(torch.Tensor, to_cpu, obj)

    def run(self) -> None:
        import torch

        for event in self.events:
            event.synchronize()
        # this thread's current device is the first GPU, not necessarily the rank's
        self.stream = torch.cuda.Stream(device=self.device) if self.events else None
        while self.jobs:
            self.jobs.pop(0)()  # each job's copies are freed once written


def _device_room() -> int:
    import torch

    free, _total = torch.cuda.mem_get_info()
    return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()


class Writer:
    """A background thread that writes the Trainer's checkpoints (see the module docstring)."""

    def __init__(self, mode: str = "device") -> None:
        if mode not in MODES:
            raise ValueError(f"async_save mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odin-checkpoint")
        self._pending: Future | None = None

    def wait(self) -> None:
        """Block until the checkpoint in flight is written; re-raise its error if a write failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    @contextlib.contextmanager
    def deferred(self, trainer: Any) -> Iterator[None]:
        """Run the Trainer's ``_save_checkpoint`` inside: its large writes go to the background. Writes
        from other threads meanwhile happen at once; saves in two threads take turns."""
        self.wait()
        batch = _Batch(self.mode)
        try:
            with _PATCHING, _patched(batch, trainer):
                yield
        except BaseException:
            try:
                batch.run()  # what a synchronous save had written before it failed
            except Exception:
                log.exception("Writing the part of a failed checkpoint save failed too")
            raise
        if batch.jobs:
            self._pending = self._pool.submit(_logged, batch.run)


def _logged(run: Callable[[], None]) -> None:
    try:
        run()
    except BaseException:
        log.exception(
            "Writing a checkpoint in the background failed; the run stops at its next save or its end."
        )
        raise


def _separate(tensors: list[Any]) -> bool:
    """No two of ``tensors`` share storage (copies would not)."""
    return len({t.untyped_storage().data_ptr() for t in tensors}) == len(tensors)


def _torch_save(batch: _Batch, real: Callable[..., Any]) -> Callable[..., Any]:
    import torch
    from torch.utils._pytree import tree_flatten, tree_unflatten

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != batch.thread or not isinstance(f, (str, os.PathLike)):
            return real(obj, f, *args, **kwargs)
        leaves, spec = tree_flatten(obj)
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        # Only containers of plain tensors (no Parameter, no autograd flag, no two views of one storage:
        # a copy would drop these) and immutable scalars; an object may change before it is written.
        plain = all(type(leaf) is torch.Tensor or isinstance(leaf, _SCALARS) for leaf in leaves)
        if not plain or not _separate(tensors) or any(t.requires_grad for t in tensors):
            return real(obj, f, *args, **kwargs)
        if sum(t.numel() * t.element_size() for t in tensors) < MIN_BYTES:
            return real(obj, f, *args, **kwargs)  # small: nothing to gain
        copies = batch.copy(tensors)
        if copies is None:
            return real(obj, f, *args, **kwargs)
        it = iter(copies)
        copied = tree_unflatten(
            [next(it) if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves], spec
        )
        batch.jobs.append(lambda: real(batch.host(copied), f, *args, **kwargs))
        return None

    return save


def _save_file(batch: _Batch, real: Callable[..., Any]) -> Callable[..., Any]:
    def save_file(tensors: dict[str, Any], filename: Any, metadata: dict[str, str] | None = None) -> None:
        values = list(tensors.values())
        # safetensors refuses non-contiguous and shared tensors: let it say so now, as it would have.
        if threading.get_ident() != batch.thread or not _separate(values):
            return real(tensors, filename, metadata=metadata)
        if not all(t.is_contiguous() for t in values):
            return real(tensors, filename, metadata=metadata)
        copies = batch.copy(values)
        if copies is None:
            return real(tensors, filename, metadata=metadata)
        copied = dict(zip(tensors, copies, strict=True))
        batch.jobs.append(lambda: real(batch.host(copied), filename, metadata=metadata))
        return None

    return save_file


@contextlib.contextmanager
def _patched(batch: _Batch, trainer: Any) -> Iterator[None]:
    import torch

    undo: list[tuple[Any, str, Any]] = []

    def swap(owner: Any, name: str, new: Any) -> None:
        undo.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, new)

    def later(real: Callable[..., Any]) -> Callable[..., Any]:
        def queued(*args: Any, **kwargs: Any) -> None:
            if threading.get_ident() != batch.thread:
                return real(*args, **kwargs)
            batch.jobs.append(lambda: real(*args, **kwargs))
            return None

        return queued

    try:
        swap(torch, "save", _torch_save(batch, torch.save))
        seen: dict[int, Any] = {}
        for module_name, name in SAFETENSORS_SAVERS:
            module = sys.modules.get(module_name)
            real = getattr(module, name, None) if module is not None else None
            if callable(real):
                swap(module, name, seen.setdefault(id(real), _save_file(batch, real)))
        state = trainer.state

        def save_state(json_path: str) -> None:
            frozen = copy.deepcopy(state)  # the state as of this step; training goes on changing it
            batch.jobs.append(lambda: type(state).save_to_json(frozen, json_path))

        swap(state, "save_to_json", save_state)
        rotation = sys.modules.get(ROTATION[0])  # not loaded: no Trainer to rotate checkpoints
        if callable(getattr(rotation, ROTATION[1], None)):
            swap(rotation, ROTATION[1], later(getattr(rotation, ROTATION[1])))
        yield
    finally:
        for owner, name, old in reversed(undo):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


_MISSING = object()
