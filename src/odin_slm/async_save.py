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
the next wait. Tensors are copied only while the copies fit in half the memory the system (or the
container) has available; beyond that, a write happens at once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import threading
import time
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
# Where a CUDA tensor is copied at the save, the default first: "pinned" (straight into pinned host memory,
# no GPU memory; the host blocks are allocated ahead of each save by ``reserver`` and kept in torch's cache)
# or "device" (a copy on the GPU, brought to the CPU by the writer: the save returns at once, but holds as
# much GPU memory as the files until written; only where the run's peak leaves that much spare, else as
# "pinned").
MODES = ("pinned", "device")
# Pinned memory for a save is reserved this long before it (gpu-full's 1.6 GB took 1.1-1.7 s on one H200).
RESERVE_AHEAD_S = 3.0
GPU_MARGIN = 2 << 30  # device mode leaves this much of the GPU above the run's peak (fragmentation, eval)
_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_clock = time.perf_counter  # the reservation's step clock (tests replace it)


def unavailable(trainer_class: type | None = None) -> str | None:
    """Why checkpoints of this transformers (and of ``trainer_class``, a subclass of its Trainer) cannot be
    written in the background, or None: the Trainer's ``_save_checkpoint`` must write the state and rotate
    through the names patched here (a rotation that ran at once could remove the previous checkpoint before
    the new one is complete), and a subclass that overrides it must still call it."""
    module = sys.modules.get(ROTATION[0])
    trainer = getattr(module, "Trainer", None)
    code = getattr(getattr(trainer, "_save_checkpoint", None), "__code__", None)
    if not callable(getattr(module, ROTATION[1], None)) or code is None:
        return "this transformers' checkpoint rotation is not known"
    if not {ROTATION[1], "save_to_json"} <= set(code.co_names):
        return "this transformers' Trainer saves through other names"
    for cls in (trainer_class or trainer).__mro__:
        if cls is trainer:
            break
        own = getattr(vars(cls).get("_save_checkpoint"), "__code__", None)
        if own is not None and "_save_checkpoint" not in own.co_names:
            return f"{cls.__qualname__}._save_checkpoint saves its own way"
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


_TOLD: set[tuple[type, str]] = set()


def reads_checkpoints(callback: Any, event: str = "on_save") -> bool:
    """Whether a Trainer callback may read the checkpoint in ``event`` (``on_save`` or ``on_train_end``):
    then the checkpoint is complete before it runs, as without this lever. transformers' own flow, progress
    and printer callbacks do not read it; another callback that does not says so with
    ``odin_reads_checkpoints = False``."""
    from transformers import TrainerCallback

    cls = type(callback)
    if getattr(cls, event, None) is getattr(TrainerCallback, event):
        return False
    if cls.__module__ == "transformers.trainer_callback" or not getattr(
        callback, "odin_reads_checkpoints", True
    ):
        return False
    if (cls, event) not in _TOLD:
        _TOLD.add((cls, event))
        log.info(
            "async_save: %s.%s may read the checkpoint, so it waits for the checkpoint to be written "
            "(a callback that does not read it can say so with odin_reads_checkpoints = False)",
            cls.__qualname__,
            event,
        )
    return True


def _available_bytes() -> int:
    """The memory available to this process: the system's, or less where a cgroup (a container) limits it."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            found += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    room = _cgroup_room()
    if room is not None:
        found.append(room)
    return max(0, min(found)) if found else 0  # unknown: every write happens at once


def _cgroup_room(proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """The least room under the memory limits of this process's cgroup and the cgroups above it (v2:
    ``memory.max``; v1: the memory controller's ``memory.limit_in_bytes``), or None without a limit."""
    try:
        lines = Path(proc).read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            base, limit_name, usage_name = Path(root), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # v1: the memory controller's own hierarchy
            base, limit_name, usage_name = (
                Path(root) / "memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        else:
            continue
        folder = base / path.strip("/")
        while True:  # a container's limit may sit on a parent of the process's own cgroup
            try:
                limit = (folder / limit_name).read_text().strip()
                if limit != "max" and int(limit) < 1 << 60:  # v1 writes "no limit" as a huge number
                    rooms.append(int(limit) - int((folder / usage_name).read_text()))
            except (OSError, ValueError):
                pass
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return min(rooms) if rooms else None


_PATCHING = threading.Lock()  # one save at a time patches the writers
_SAVING = threading.local()  # set on the thread whose save has them patched (a save inside it joins it)


class _Batch:
    """The writes of one checkpoint, in the order the Trainer asked for them (on the saving thread)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.thread = threading.get_ident()
        self.open = True  # until the save returns: a writer function kept past it writes at once
        self.jobs: list[Callable[[], Any]] = []
        self.events: list[Any] = []
        self.streams: dict[Any, Any] = {}
        self.budget = _available_bytes() // 2
        self.gpu_room: dict[Any, int] = {}  # device mode: per GPU, what this save's copies may still take

    def takes(self) -> bool:
        """Whether a write called now belongs to this save (its thread, while it runs)."""
        return self.open and threading.get_ident() == self.thread

    def take_gpu_room(self, sizes: dict[Any, int]) -> bool:
        """Whether copies of ``sizes`` bytes per GPU fit what this save may still take there, and take it.
        The spare memory is read once per save and spent down: a copy served from the allocator's cache (the
        step's freed activations) changes none of the counters that ``_gpu_spare`` reads."""
        for device in sizes:
            self.gpu_room.setdefault(device, _gpu_spare(device))
        if any(size > self.gpu_room[device] for device, size in sizes.items()):
            return False
        for device, size in sizes.items():
            self.gpu_room[device] -= size
        return True

    def copy(self, tensors: list[Any]) -> list[Any] | None:
        """Copies of ``tensors`` as of now (pinned or on the GPU, see ``MODES``), or None when they would
        pass the memory budget or cannot be allocated."""
        import torch

        devices = {t.device for t in tensors if t.device.type == "cuda"}
        copies = None
        on_gpu = {d: sum(_nbytes(t) for t in tensors if t.device == d) for d in devices}
        if self.mode == "device" and devices and self.take_gpu_room(on_gpu):
            try:  # one device-to-device copy per tensor: the loop waits for nothing
                copies = [
                    t.detach().clone() if t.device.type == "cuda" else t.to("cpu", copy=True) for t in tensors
                ]
                self.budget -= sum(_nbytes(t) for t in tensors if t.device.type != "cuda")
            except torch.cuda.OutOfMemoryError:
                copies = None
        if copies is None:
            # Pinned blocks come from torch's caching host allocator, which rounds each one up to a power of two.
            held = sum(_pinned_size(t) if t.device.type == "cuda" else _nbytes(t) for t in tensors)
            if held > self.budget:
                return None
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
            self.budget -= held
        for device in devices:  # the copies are queued on each GPU's current stream
            with torch.cuda.device(device):
                event = torch.cuda.Event()
                event.record()
                self.events.append((device, event))
        return copies

    def host(self, obj: Any) -> Any:
        """``obj`` with its GPU copies brought to the CPU (on the writer's thread, off the compute stream)."""
        import torch
        from torch.utils._pytree import tree_map_only

        def to_cpu(t: Any) -> Any:
            if t.device.type != "cuda":
                return t
            with torch.cuda.stream(self.streams[t.device]):
                return t.to("cpu")  # pageable: returns once copied, so the GPU copy may then be freed

        return tree_map_only(torch.Tensor, to_cpu, obj)

    def run(self) -> None:
        import torch

        for device, event in self.events:
            event.synchronize()
            if device not in self.streams:  # this thread's current device is the first GPU, not the tensor's
                self.streams[device] = torch.cuda.Stream(device=device)
        while self.jobs:
            self.jobs.pop(0)()  # each job's copies are freed once written


def _nbytes(t: Any) -> int:
    return t.numel() * t.element_size()


def _pinned_size(t: Any) -> int:
    return _block(_nbytes(t))


def _block(size: int) -> int:
    """The pinned block that torch's caching host allocator hands out for ``size`` bytes (a power of two)."""
    return 1 << (size - 1).bit_length() if size > 1 else size


def _reserve(sizes: list[int]) -> None:
    """Allocate a pinned block of each size and free them all: torch's host allocator keeps freed blocks
    and hands them to the next request of the same rounded size (the save's copies)."""
    import torch

    start = time.perf_counter()
    try:
        blocks = [torch.empty(size, dtype=torch.uint8, pin_memory=True) for size in sizes]
    except RuntimeError as error:  # the save allocates what it needs, as without the reservation
        log.info("async_save: no pinned memory reserved for the next save: %s", error)
        return
    held = sum(_block(b.numel()) for b in blocks)
    del blocks
    log.info(
        "async_save: %.0f MiB of pinned memory reserved for the next save in %.2f s",
        held / (1 << 20),
        time.perf_counter() - start,
    )


def _gpu_spare(device: Any) -> int:
    """GPU memory the run has not reached so far, less a margin: a copy that fits here cannot take what a
    later step of the same shape needs (the memory free now is not that: activations are freed at a save).
    Counted from what the driver has free, so that memory other processes hold on the GPU counts too."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    regrow = torch.cuda.max_memory_reserved(device) - torch.cuda.memory_reserved(device)
    return free - regrow - GPU_MARGIN


class Writer:
    """A background thread that writes the Trainer's checkpoints (see the module docstring)."""

    def __init__(self, mode: str = MODES[0]) -> None:
        if mode not in MODES:
            raise ValueError(f"async_save mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odin-checkpoint")
        self._pending: Future | None = None
        self._reserving: Future | None = None

    def reserve(self, tensors: list[Any]) -> bool:
        """In pinned mode, have the writer's thread allocate the pinned blocks that copies of ``tensors`` (the
        GPU tensors a save will copy) take, so that the save finds them in torch's cache instead of waiting
        for the host allocations (1.2 s of gpu-full's first save on one H200). Within the memory budget, and
        one at a time. The next save cancels a reservation not yet started (it waits behind a write) and
        waits for one under way, so that the two never allocate the same blocks twice. Whether one was asked
        for."""
        sizes = [_nbytes(t) for t in tensors if t.device.type == "cuda" and t.numel()]
        if self.mode != "pinned" or not sizes or sum(map(_block, sizes)) > _available_bytes() // 2:
            return False
        if self._reserving is not None and not self._reserving.done():
            return False
        self._reserving = self._pool.submit(_reserve, sizes)
        return True

    def wait(self) -> None:
        """Block until the checkpoint in flight is written; re-raise its error if a write failed. An
        interrupted wait (Ctrl-C) leaves the checkpoint in flight for the next wait."""
        pending = self._pending
        if pending is None:
            return
        try:
            pending.result()
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    @contextlib.contextmanager
    def deferred(self, trainer: Any) -> Iterator[None]:
        """Run the Trainer's ``_save_checkpoint`` inside: its large writes go to the background. Writes
        from other threads meanwhile happen at once, saves in two threads take turns, and the writes of a
        save inside a save (from a callback, say) join the outer save's."""
        if getattr(_SAVING, "batch", None) is not None:
            yield
            return
        self.wait()
        reserving = self._reserving
        if reserving is not None and not reserving.cancel():
            try:  # under way: its blocks are the ones this save's copies take from the cache
                reserving.result()
            except Exception:
                log.exception("Reserving pinned memory for a checkpoint failed; the save allocates its own")
        batch = _Batch(self.mode)
        try:
            with _PATCHING, _patched(batch, trainer):
                _SAVING.batch = batch
                try:
                    yield
                finally:
                    _SAVING.batch = None
        except BaseException:
            try:
                batch.run()  # what a synchronous save had written before it failed
            except Exception:
                log.exception("Writing the part of a failed checkpoint save failed too")
            raise
        if batch.jobs:
            self._pending = self._pool.submit(_logged, batch.run)


def reserver(trainer: Any) -> Any:
    """A TrainerCallback that asks ``trainer._odin_writer`` to reserve pinned memory for what a checkpoint
    copies (the weights the model saves, a PEFT model's: those it trains, and, unless ``save_only_model``,
    the optimizer's state) a few seconds before each save (``RESERVE_AHEAD_S``, from the last step's time):
    each step-interval save, each epoch's save and the last step's. Before each save, because capturing a
    CUDA graph (the compiled layers record theirs at new row lengths) empties torch's pinned-memory cache;
    where the blocks are still cached, the reservation takes them from it and gives them back at once.

    It decides as a step begins, when the previous step's save (if any) has made its copies. A step's time
    leaves out the saves and evaluations that followed it."""
    import math

    from transformers import TrainerCallback

    class ReservePinnedMemory(TrainerCallback):
        odin_reads_checkpoints = False

        def __init__(self) -> None:
            self.reset(0)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.reset(state.global_step)  # a trainer can train again, resuming from a checkpoint

        def reset(self, step: int) -> None:
            self.ended: float | None = None  # when the last step ended, None after a save or evaluation
            self.step_s: float | None = None  # the last step's time, those saves and evaluations left out
            self.pass_start, self.passes = step, 0  # the pass over the data in progress
            self.batches: int | None = None  # the dataloader's length, where it has one
            self.pass_steps: int | None = None  # a pass's optimizer steps, counted where there is no length
            self.reserved_for: Any = None  # the save reserved for: its step, or ("epoch", pass)

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.pass_start, self.passes = state.global_step, self.passes + 1
            try:
                self.batches = len(kwargs["train_dataloader"])
            except (KeyError, TypeError):  # an iterable dataset
                self.batches = None

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.batches is None:  # the Trainer's epochs are not passes here: count the pass's steps
                self.pass_steps = state.global_step - self.pass_start

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = _clock()
            if self.ended is not None:
                self.step_s = now - self.ended
            self.ended = now

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.ended = None

        on_evaluate = on_save

        def steps_to_pass_end(self, args: Any, state: Any) -> int | None:
            """Optimizer steps until the pass in progress ends, this one included."""
            if self.batches:
                # the Trainer's epoch counts batches: epoch + batches done / batches; the last update of a
                # pass takes what is left of the batches, however few
                accumulate = max(1, int(args.gradient_accumulation_steps))
                done = round((state.epoch - math.floor(state.epoch)) * self.batches)
                return math.ceil(self.batches / accumulate) - math.ceil(done / accumulate)
            if self.pass_steps:
                return self.pass_steps - (state.global_step - self.pass_start)
            return None  # the first pass over an iterable dataset: its end cannot be told

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            writer = trainer.__dict__.get("_odin_writer")
            strategy = str(getattr(args.save_strategy, "value", args.save_strategy))
            if writer is None or self.step_s is None or state.global_step >= state.max_steps:
                return
            # steps to the last one (which saves), this one included
            left = state.max_steps - state.global_step
            if strategy == "steps":
                # the next multiple of save_steps (0: the Trainer saves at the last step only), or the last step
                every = int(state.save_steps or 0) if (state.save_steps or 0) > 0 else state.max_steps
                target: Any = min((state.global_step // every + 1) * every, state.max_steps)
                steps = target - state.global_step
            elif strategy == "epoch":
                to_end = self.steps_to_pass_end(args, state)
                target, steps = ("epoch", self.passes), left if to_end is None else min(to_end, left)
            else:  # "best" saves follow the metric; with it, async_save is off
                return
            if steps <= 0 or target == self.reserved_for or steps * self.step_s > RESERVE_AHEAD_S:
                return
            if writer.reserve(saved_tensors(trainer)):
                self.reserved_for = target

    return ReservePinnedMemory()


def saved_tensors(trainer: Any) -> list[Any]:
    """The tensors a checkpoint of ``trainer`` copies: the weights the model saves (a PEFT model's: those it
    trains) and, unless ``save_only_model``, the optimizer's state; each storage once."""
    import torch

    model = trainer.model
    if hasattr(model, "peft_config"):
        weights = [p for p in model.parameters() if p.requires_grad]
    else:
        weights = list(model.state_dict().values())
    state = {} if trainer.args.save_only_model else getattr(trainer.optimizer, "state", None) or {}
    moments = [v for s in state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return list({t.data_ptr(): t for t in weights + moments if isinstance(t, torch.Tensor)}.values())


def _logged(run: Callable[[], None]) -> None:
    try:
        run()
    except BaseException:
        log.exception(
            "Writing a checkpoint in the background failed; the run stops at its next save or its end."
        )
        raise


def _separate(tensors: list[Any]) -> bool:
    """No two of ``tensors`` share storage (copies would not), and each is dense (sparse and other layouts
    have no one storage to compare: they are written at once)."""
    import torch

    if any(t.layout is not torch.strided for t in tensors):
        return False
    return len({t.untyped_storage().data_ptr() for t in tensors}) == len(tensors)


def _torch_save(batch: _Batch, real: Callable[..., Any]) -> Callable[..., Any]:
    import torch
    from torch.utils._pytree import tree_flatten, tree_unflatten

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        if not batch.takes() or not isinstance(f, (str, os.PathLike)):
            return real(obj, f, *args, **kwargs)
        leaves, spec = tree_flatten(obj)
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        # Only containers of plain tensors (no Parameter, no autograd flag, no two views of one storage:
        # a copy would drop these) and immutable scalars; an object may change before it is written.
        plain = all(type(leaf) is torch.Tensor or isinstance(leaf, _SCALARS) for leaf in leaves)
        if not plain or not _separate(tensors) or any(t.requires_grad for t in tensors):
            return real(obj, f, *args, **kwargs)
        if sum(_nbytes(t) for t in tensors) < MIN_BYTES:
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
        if not batch.takes() or not _separate(values):
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
            if not batch.takes():
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
            if not batch.takes():
                return type(state).save_to_json(state, json_path)
            frozen = copy.deepcopy(state)  # the state as of this step; training goes on changing it
            batch.jobs.append(lambda: type(state).save_to_json(frozen, json_path))

        swap(state, "save_to_json", save_state)
        rotation = sys.modules.get(ROTATION[0])  # not loaded: no Trainer to rotate checkpoints
        if callable(getattr(rotation, ROTATION[1], None)):
            swap(rotation, ROTATION[1], later(getattr(rotation, ROTATION[1])))
        yield
    finally:
        batch.open = False
        for owner, name, old in reversed(undo):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


_MISSING = object()
