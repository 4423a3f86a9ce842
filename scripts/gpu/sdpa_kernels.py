"""Which CUDA kernels SDPA runs with each backend first in torch's priority order (as `fast.tune`'s
`sdpa_backend` lever sets it), eager and compiled, forward and backward, at the benchmark's L shape.

    python scripts/gpu/sdpa_kernels.py
"""

import torch
from torch.nn.attention import SDPBackend
from torch.profiler import ProfilerActivity, profile

DEFAULT = list(torch._C._get_sdp_priority_order())


def kernels(fn, *args) -> list[str]:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(*args).sum().backward()
        torch.cuda.synchronize()
    names = {e.key for e in prof.key_averages() if e.device_type.name == "CUDA"}
    return sorted(
        n[:70] for n in names if any(k in n.lower() for k in ("flash", "cudnn", "fmha", "attn", "sdpa"))
    )


def attention(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


for first in (None, "CUDNN_ATTENTION", "FLASH_ATTENTION"):
    order = (
        DEFAULT
        if first is None
        else [int(getattr(SDPBackend, first))] + [b for b in DEFAULT if b != int(getattr(SDPBackend, first))]
    )
    torch._C._set_sdp_priority_order(order)
    torch._dynamo.reset()
    q, k, v = (
        torch.randn(4, 32, 2048, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in "qkv"
    )
    compiled = torch.compile(attention)
    compiled(q, k, v).sum().backward()  # compile outside the profile
    print(first or "torch's order", "eager:", kernels(attention, q, k, v))
    print(first or "torch's order", "compiled:", kernels(compiled, q, k, v))
