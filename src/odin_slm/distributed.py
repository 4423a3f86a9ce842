"""What a rank needs to know under torchrun / accelerate launch (DDP, FSDP; gloo on CPU).

Everything here works before a process group exists (from the launcher's environment) or
falls back to the single-process answer, so one recipe serves 1 and N processes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any


def world_size() -> int:
    """The launcher's world size (torchrun, accelerate launch, MPI), before any process group exists."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def launcher_rank() -> int:
    """The launcher's global rank (torchrun / accelerate launch set RANK); 0 when not launched."""
    rank = os.environ.get("RANK", "0")
    return int(rank) if rank.isdigit() else 0


def sum_over_ranks(value: int) -> int:
    """Sum a per-rank count over all ranks (the plain value when no process group exists)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    device = "cuda" if "nccl" in str(dist.get_backend()) else "cpu"
    total = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(total)
    return int(total.item())


def process_group_exists() -> bool:
    """Whether a default process group exists (no import: none exists before torch.distributed loads)."""
    dist = sys.modules.get("torch.distributed")
    return bool(dist is not None and dist.is_available() and dist.is_initialized())


def leave_process_group() -> None:
    """Destroy this rank's process group at the end of a run that finished cleanly (trained, or
    stopped by a signal with its checkpoint written).

    A rank that exits with its group alive can abort at interpreter exit (gloo's worker threads are torn
    down with the interpreter: "terminate called without an active exception", pytorch#190489), and NCCL
    warns that the group was not destroyed. Not after an exception: destroying while another rank still
    waits in a collective can hang (torchtitan#1342). Safe when no group exists.
    """
    if process_group_exists():
        sys.modules["torch.distributed"].destroy_process_group()


def new_digest() -> Any:
    return hashlib.blake2b(digest_size=8)


def weights_digest(model: Any) -> str:
    """A digest of the trainable weights: DDP keeps them identical on every rank."""
    digest = new_digest()
    for p in model.parameters():
        if p.requires_grad:
            digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
