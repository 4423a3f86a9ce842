"""Does torch's caching host allocator hand blocks freed by another thread to the next pinned allocation?

    python scripts/gpu/pinned_cache.py

Times 1,088 pinned allocations of gpu-full's checkpoint sizes (272 weights of SmolLM2-135M's shape, each
with Adam's two moments and a step) four ways, each in a fresh process: cold; after the same blocks were
allocated and freed in this thread; in another thread; and after odin's reservation (``Writer.reserve``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import torch


def sizes() -> list[int]:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(sys.argv[2]) if len(sys.argv) > 2 else None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    weights = [p.numel() * 4 for p in model.state_dict().values()]
    return weights + [s for w in weights for s in (w, w, 4)]


def allocate(all_sizes: list[int]) -> float:
    t = time.perf_counter()
    blocks = [torch.empty(s, dtype=torch.uint8, pin_memory=True) for s in all_sizes]
    del blocks
    return time.perf_counter() - t


if len(sys.argv) > 1 and sys.argv[1] in ("cold", "same", "thread", "odin"):
    torch.cuda.init()
    all_sizes = sizes()
    way = sys.argv[1]
    if way == "same":
        allocate(all_sizes)
    elif way == "thread":
        th = threading.Thread(target=allocate, args=(all_sizes,))
        th.start()
        th.join()
    elif way == "odin":
        from odin_slm import async_save

        writer = async_save.Writer("pinned")
        writer.reserve([torch.empty(s, dtype=torch.uint8, device="cuda") for s in all_sizes])
        writer._pool.submit(lambda: None).result()
    print(f"== {way}: {len(all_sizes)} pinned allocations took {allocate(all_sizes):.3f} s")
else:
    for way in ("cold", "same", "thread", "odin", "cold", "thread", "odin"):
        subprocess.run([sys.executable, __file__, way, *sys.argv[1:]], check=False)
