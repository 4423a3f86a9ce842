"""async_save="device" on a GPU with and without room: gpu-full's Trainer (shape model, fp32 weights, fused
AdamW), as in profile_save.py, saving in device mode in three states of the GPU:

- ``room``: nothing else on the GPU. The copies are made on the GPU (extra peak about the checkpoint's size).
- ``own-peak``: this process once reserved all but the checkpoint's size plus 1 GiB (a large step, say),
  then freed it. Copies that would take what that step takes again go to pinned host memory (each write
  of the save is placed on its own: the weights may fit where the optimizer state does not).
- ``other-process``: a second process holds all but the checkpoint's size plus 1 GiB. The copies would fit
  now but leave less than the 2 GiB margin, so they go to pinned host memory.

    python scripts/gpu/device_fallback.py MODEL_DIR OUT_DIR

Prints, per state, the spare memory async_save counted, the mode the copies took (from the GPU memory the
save added), and whether the checkpoint's weights and optimizer state equal a synchronous save's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import save_trainer  # scripts/gpu/save_trainer.py, beside this script
import torch
from safetensors.torch import load_file

from odin_slm import async_save

model_dir, out = sys.argv[1], sys.argv[2]
trainer = save_trainer.trained(model_dir, out)
model = trainer.model
ckpt_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + sum(
    v.numel() * v.element_size()
    for s in trainer.optimizer.state.values()
    for v in s.values()
    if torch.is_tensor(v)
)


def save(mode: str | None, step: int) -> tuple[float, dict, dict]:
    trainer._odin_writer = async_save.Writer(mode) if mode else None
    trainer.state.global_step = step
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    trainer._save_checkpoint(trainer.model, None)
    trainer.wait_for_checkpoints()
    extra = (torch.cuda.max_memory_allocated() - before) / 2**20
    folder = f"{out}/checkpoint-{step}"
    weights = load_file(f"{folder}/model.safetensors")
    optim = torch.load(f"{folder}/optimizer.pt", map_location="cpu", weights_only=False)["state"]
    return extra, weights, optim


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        same(a[k], b[k]) if isinstance(a[k], dict) else torch.equal(a[k].cpu(), b[k].cpu()) for k in a
    )


_, sync_w, sync_o = save(None, 1)
print(f"== checkpoint {ckpt_bytes / 2**20:.0f} MiB, GPU total {torch.cuda.mem_get_info()[1] / 2**30:.1f} GiB")
holder = None
for step, state in enumerate(("room", "own-peak", "other-process"), start=2):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    free = torch.cuda.mem_get_info()[0]
    leave = ckpt_bytes + (1 << 30)
    if state == "own-peak":  # a big allocation, freed: the peak stays the run's, the memory stays reserved
        big = torch.empty(free - leave, dtype=torch.uint8, device="cuda")
        del big
    elif state == "other-process":
        code = f"import torch,sys,time; x=torch.empty({free - leave}, dtype=torch.uint8, device='cuda'); print('held', flush=True); time.sleep(600)"  # noqa: E501
        holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        time.sleep(1)
    spare = async_save._gpu_spare(torch.device("cuda", 0))
    total_based = torch.cuda.mem_get_info()[1] - torch.cuda.max_memory_reserved() - async_save.GPU_MARGIN
    extra, w, o = save("device", step)
    # each write of the save (weights, then optimizer state) is placed on its own: some may fit the GPU
    where = "gpu" if extra > 0.9 * ckpt_bytes / 2**20 else "partly gpu" if extra > 1 else "pinned host"
    print(
        f"== {state}: spare_mib={spare / 2**20:.0f} (from the total: {total_based / 2**20:.0f}) "
        f"extra_peak_mib={extra:.0f} copies_on={where} "
        f"weights_equal={same(w, sync_w)} optimizer_equal={same(o, sync_o)}"
    )
    shutil.rmtree(f"{out}/checkpoint-{step}", ignore_errors=True)
if holder is not None:
    holder.kill()
