"""Where a checkpoint save's host time goes on the GPU: gpu-full's Trainer (shape model, fp32 weights, fused
AdamW) saving with the async_save lever off, "pinned" and "device", twice each.

    [RESERVE=1] python scripts/gpu/profile_save.py MODEL_DIR OUT_DIR

RESERVE=1 first reserves the pinned memory as a run does before a save (``async_save.reserver``),
and prints how long that took in the writer's thread.

Prints, per save, the time until ``_save_checkpoint`` returned (what holds the training loop up), the time
until the checkpoint was complete, the peak GPU memory it added, and cProfile's top entries.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import sys
import time

import save_trainer  # scripts/gpu/save_trainer.py, beside this script
import torch

from odin_slm import async_save

model_dir, out = sys.argv[1], sys.argv[2]
trainer = save_trainer.trained(model_dir, out)

if os.environ.get("RESERVE") == "1":
    trainer._odin_writer = async_save.Writer("pinned")
    t = time.perf_counter()
    trainer._odin_writer.reserve(async_save.saved_tensors(trainer))  # what async_save.reserver reserves
    asked = time.perf_counter() - t
    trainer._odin_writer._pool.submit(lambda: None).result()  # the reservation ran before this
    print(f"== reserve: asked_s={asked:.3f} done_s={time.perf_counter() - t:.3f}")

for mode in ("sync", "pinned", "pinned", "device", "device", "sync"):
    trainer._odin_writer = None if mode == "sync" else async_save.Writer(mode)
    trainer.state.global_step += 1
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    trainer._save_checkpoint(trainer.model, None)
    prof.disable()
    returned = time.perf_counter() - t
    trainer.wait_for_checkpoints()
    done = time.perf_counter() - t
    extra = (torch.cuda.max_memory_allocated() - before) / 2**20
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
    top = [line for line in text.getvalue().splitlines() if line.strip()[:1].isdigit()][-8:]
    print(f"== {mode}: returned_s={returned:.3f} complete_s={done:.3f} extra_peak_mib={extra:.0f}")
    print("\n".join("   " + line[:150] for line in top))
    shutil.rmtree(out, ignore_errors=True)
