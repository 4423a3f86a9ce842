"""async_save="device": one save's GPU copies together against the spare GPU memory, on a real GPU.

A run whose peak (the step's activations, freed at the save and kept in the allocator's cache) leaves
room for the optimizer state's copy but not for both the weights' and the optimizer state's. The
weights are copied on the GPU; the optimizer state must then go to pinned host memory, and the next
step's activations must fit again.

    PYTHONPATH=src python scripts/gpu/device_overcommit.py
"""

import torch

from odin_slm import async_save

GIB, BLOCK = 1 << 30, 256 << 20


def blocks(k: int) -> list[torch.Tensor]:
    return [torch.empty(BLOCK // 4, device="cuda") for _ in range(k)]


def size(tensors: list) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t.is_cuda)


def spare() -> float:
    return async_save._gpu_spare(torch.device("cuda", 0)) / GIB


n = torch.cuda.mem_get_info()[0] // BLOCK
weights, moments = blocks(n // 20), blocks(2 * (n // 20))  # the weights and Adam's two moments
# what the run's peak leaves free: room for the moments' copy, not for both copies
keep = len(moments) + 6 + async_save.GPU_MARGIN // BLOCK
n_activations = n - len(weights) - len(moments) - keep
activations = blocks(n_activations)
del activations  # freed at the save, kept in the allocator's cache
print(f"spare before the save {spare():.1f} GiB; weights {size(weights) / GIB:.1f} GiB, "
      f"optimizer {size(moments) / GIB:.1f} GiB")  # fmt: skip
batch = async_save._Batch("device")
cw = batch.copy(weights)
print(f"weights copy -> {cw[0].device if cw else None}; spare now {spare():.1f} GiB")
co = batch.copy(moments)
print(f"optimizer copy -> {co[0].device if co else None}; spare now {spare():.1f} GiB")
print(f"device copies held: {size((cw or []) + (co or [])) / GIB:.1f} GiB")
torch.cuda.synchronize()
try:
    activations = blocks(n_activations)
    print("next step: activations fit again")
except torch.cuda.OutOfMemoryError as e:
    print("next step: OutOfMemoryError:", str(e).splitlines()[0][:160])
