"""``python -m odin_slm.train`` with a clock on each optimizer step: where a short run's time goes.

    python scripts/gpu/clocked_train.py STEPS_JSON [odin_slm.train arguments...]

Writes STEPS_JSON: the host time at the end of each step (seconds from the start of ``train()``), the
checkpoint saves, torch's compile times, and the set-up before the first step split into its parts
(``stack_imports_s``, then ``phases``: each of the recipe's set-up steps and ``fast.tune``).

``ODIN_LEVERS='{"compile_backend": "cudagraphs"}'`` overrides odin's lever defaults for this run (a
measurement aid, not a user knob). Its keys ``import_compiler`` (``main`` or ``thread``, see
``import_compiler_early``) and ``cudagraph_asserts`` (``false``) are this script's own, for levers not
yet in odin. The clock is a callback that reads ``time.perf_counter()``: it adds no GPU synchronization.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import threading
import time
from typing import Any


def watch_compile_workers(fast: Any, t_start: float, rec: dict[str, Any]) -> dict[str, float]:
    """Record when odin asked for inductor's compile workers and when the first of them answered (seconds
    from the start; inductor hands kernels to the workers from then on).

    A daemon thread polls the pool's ready marker every 50 ms once it exists (a run that does not warm
    them early gets the marker at its first compile): whether the workers beat the first step's kernels.
    It writes only the dict it returns (``ready_s``), never ``rec``, which the main thread dumps.
    """
    warm = fast.warm_compile_workers

    def timed_warm() -> bool:
        rec.setdefault("compile_workers_asked_s", round(time.perf_counter() - t_start, 3))
        return warm()

    fast.warm_compile_workers = timed_warm

    def poll() -> None:
        while True:
            pool = sys.modules.get("torch._inductor.async_compile")
            ready = getattr(getattr(pool, "AsyncCompile", None), "_ready_future", None)
            if ready is not None and ready.done():
                seen["ready_s"] = round(time.perf_counter() - t_start, 3)
                return
            time.sleep(0.05)

    seen: dict[str, float] = {}
    threading.Thread(target=poll, daemon=True).start()
    return seen


def clock_phases(recipe: type, fast: Any, t_start: float, rec: dict[str, Any]) -> None:
    """Record how long each of the recipe's set-up steps and odin's ``fast.tune`` took, and when each
    ended (seconds from the start): the set-up before the first step, split. The rest of it, from
    ``tune``'s end to the first step, is the Trainer's construction and ``train()``'s own preparation."""
    phases = rec.setdefault("phases", {})

    def timed(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                end = time.perf_counter()
                phases[label] = {"s": round(end - t, 3), "end_s": round(end - t_start, 3)}

        setattr(owner, name, wrapper)

    for step in ("_arguments", "_data", "_warm_compiler", "_model", "_adapter"):
        timed(recipe, step, step.lstrip("_"))
    timed(fast, "tune", "tune")


# What the first torch.compile call imports in the training process (``python -X importtime``, torch 2.11):
# modules plain training never loads.
COMPILER_MODULES = ("torch._inductor.compile_fx", "torch._dynamo.repro.after_dynamo")


def import_compiler_early(recipe: type, how: str, t_start: float, rec: dict[str, Any]) -> dict:
    """Where the recipe started the compile workers (a run that will compile), import ``COMPILER_MODULES``
    right after: in the main thread (``how="main"``: their cost, as a phase of its own) or in a daemon
    thread (``"thread"``: whether that overlaps the model load). A measurement aid for a lever not yet
    in odin; it writes only the dict it returns."""
    inner = recipe._warm_compiler
    seen: dict[str, Any] = {}

    def load() -> None:
        t = time.perf_counter()
        for name in COMPILER_MODULES:
            importlib.import_module(name)
        end = time.perf_counter()
        seen[f"compiler_imports_{how}"] = {"s": round(end - t, 3), "end_s": round(end - t_start, 3)}

    @functools.wraps(inner)
    def wrapper(self: Any) -> None:
        inner(self)
        if "compile_workers_asked_s" not in rec:  # the run will not compile
            return
        if how == "main":
            load()
        else:
            threading.Thread(target=load, daemon=True).start()

    recipe._warm_compiler = wrapper
    return seen


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    t_start = time.perf_counter()
    import odin_compat  # noqa: F401,I001  (first, as in odin_slm.train: its repairs apply as the stack loads)
    from transformers import TrainerCallback

    from odin_slm import fast, train

    stack_imports_s = round(time.perf_counter() - t_start, 3)
    levers = json.loads(os.environ.get("ODIN_LEVERS") or "{}")
    # not an odin lever: where to import the compiler early (main or thread), measured before it is one
    import_compiler = levers.pop("import_compiler", "")
    if import_compiler not in ("", "main", "thread"):
        raise SystemExit(f"ODIN_LEVERS: import_compiler={import_compiler!r}: main or thread")
    # nor this: false turns off CUDA graph trees' debugging checks of their memory pool, which walk every
    # live output of the graphs recorded before (the recording step's time grows with each graph)
    if levers.pop("cudagraph_asserts", True) is False:
        import torch._inductor.config as inductor_config

        inductor_config.triton.slow_path_cudagraph_asserts = False
    unknown = sorted(set(levers) - set(fast.DEFAULTS))
    if unknown:  # a misspelt lever would measure the defaults under another name
        raise SystemExit(
            f"ODIN_LEVERS: no such lever {', '.join(unknown)}; known: {', '.join(fast.DEFAULTS)}"
        )
    fast.DEFAULTS.update(levers)
    rec: dict[str, Any] = {}
    workers = watch_compile_workers(fast, t_start, rec)
    clock_phases(train.SFTRecipe, fast, t_start, rec)
    early = import_compiler_early(train.SFTRecipe, import_compiler, t_start, rec) if import_compiler else {}
    rec.update({"argv": argv, "levers": os.environ.get("ODIN_LEVERS"), "steps": [], "saves": []})
    rec["stack_imports_s"] = stack_imports_s

    class Clock(TrainerCallback):
        odin_reads_checkpoints = False  # its on_save reads the time only: the checkpoint may still be written

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            rec["train_begin"] = time.perf_counter()
            rec["imports_s"] = rec["train_begin"] - t_start

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            rec["steps"].append(round(time.perf_counter() - rec["train_begin"], 4))

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            rec["saves"].append(round(time.perf_counter() - rec["train_begin"], 4))

    code = train.main(argv, callbacks=[Clock()])
    rec["rc"] = code
    rec["process_s"] = round(time.perf_counter() - t_start, 3)
    rec["compile_workers_ready_s"] = workers.get("ready_s")
    rec["phases"].update(early)
    try:
        import torch._dynamo.utils as dynamo_utils

        rec["compile_times"] = dynamo_utils.compile_times(repr="str")
        # e.g. inductor's async_compile_cache_miss: the kernels the run compiled
        rec["counters"] = {k: dict(v) for k, v in dynamo_utils.counters.items() if v}
        import torch._inductor.config as inductor_config

        rec["compile_threads"] = inductor_config.compile_threads
    except Exception as exc:  # an older torch: the clock still counts
        rec["compile_times"] = repr(exc)
    with open(out, "w") as f:
        json.dump(rec, f, indent=1)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
