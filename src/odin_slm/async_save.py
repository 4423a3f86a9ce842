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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("odin_slm")

MIN_BYTES = 1 << 20  # smaller tensor files (RNG, scheduler) are written at once: nothing to gain
# What the Trainer calls to write, by module and name; the rotation is what must wait for the writes.
SAFETENSORS_SAVERS = (
    ("safetensors.torch", "save_file"),
    ("transformers.modeling_utils", "safe_save_file"),
    ("peft.peft_model", "safe_save_file"),
)
ROTATION = ("transformers.trainer", "rotate_checkpoints")  # transformers >= 5; earlier: a Trainer method
# Where a CUDA tensor is copied at the save: "device" (a copy on the GPU, taken without waiting for it,
# brought to the CPU by the writer; only while it fits in half the GPU memory left, else as "pinned") or
# "pinned" (straight into pinned host memory; the loop waits for the host allocations).
MODES = ("device", "pinned")
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def unavailable(trainer_cls: type | None = None) -> str | None:
    """Why checkpoints of this transformers cannot be written in the background, or None."""
    module = sys.modules.get(ROTATION[0])
    if module is not None and callable(getattr(module, ROTATION[1], None)):
        return None
    if trainer_cls is not None and callable(getattr(trainer_cls, "_rotate_checkpoints", None)):
        return None
    return "this transformers' checkpoint rotation is not known"


def unsupported(args: Any) -> str | None:
    """Why this run's checkpoints must be written in the loop, or None."""
    if getattr(args, "push_to_hub", False):
        return "push_to_hub uploads each checkpoint as it is saved"
    if getattr(args, "load_best_model_at_end", False) or getattr(args, "metric_for_best_model", None):
        return "the best-model tracking reads checkpoints as they are saved"
    if getattr(args, "deepspeed", None) or getattr(args, "fsdp", None):
        return "DeepSpeed and FSDP write their own checkpoints"
    return None


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 0  # unknown: every write happens at once


class _Batch:
    """The writes of one checkpoint, in the order the Trainer asked for them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
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
            for t in tensors:
                t = t.detach()
                if t.device.type == "cuda":
                    # Pinned, and ordered after this step's kernels on the stream; later steps write the
                    # weights after the copy has read them. The writer waits for the copy to land.
                    out = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
                    copies.append(out.copy_(t, non_blocking=True))
                else:
                    copies.append(t.to("cpu", copy=True))
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
        """Run the Trainer's ``_save_checkpoint`` inside: its large writes go to the background."""
        self.wait()
        batch = _Batch(self.mode)
        try:
            with _patched(batch, trainer):
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
        log.exception("Writing a checkpoint in the background failed; the run stops at its next save.")
        raise


def _torch_save(batch: _Batch, real: Callable[..., Any]) -> Callable[..., Any]:
    import torch
    from torch.utils._pytree import tree_flatten, tree_unflatten

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        leaves, spec = tree_flatten(obj)
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        plain = all(isinstance(leaf, (torch.Tensor, *_SCALARS)) for leaf in leaves)
        size = sum(t.numel() * t.element_size() for t in tensors)
        if not plain or size < MIN_BYTES or not isinstance(f, (str, os.PathLike)):
            return real(obj, f, *args, **kwargs)  # an object that may change later, or small: now
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
        storages = {t.untyped_storage().data_ptr() for t in values}
        # safetensors refuses non-contiguous and shared tensors: let it say so now, as it would have.
        if len(storages) < len(values) or not all(t.is_contiguous() for t in values):
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

    def later(real: Callable[..., Any]) -> Callable[..., None]:
        def queued(*args: Any, **kwargs: Any) -> None:
            batch.jobs.append(lambda: real(*args, **kwargs))

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
        rotation = sys.modules.get(ROTATION[0])
        if rotation is not None and callable(getattr(rotation, ROTATION[1], None)):
            swap(rotation, ROTATION[1], later(getattr(rotation, ROTATION[1])))
        if callable(getattr(type(trainer), "_rotate_checkpoints", None)):
            swap(trainer, "_rotate_checkpoints", later(trainer._rotate_checkpoints))
        yield
    finally:
        for owner, name, old in reversed(undo):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


_MISSING = object()
