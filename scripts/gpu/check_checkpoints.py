"""After a shipped-config run: is its last checkpoint complete, and does it hold the weights final/ holds?

Both are saved at the last step (the checkpoint by the Trainer, written in the background with the async_save
lever; final/ by odin after training), so their tensors must be equal. Usage: check_checkpoints.py OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from odin_slm.checkpoints import checkpoint_dirs, incomplete_reason


def weights(folder: Path) -> dict[str, torch.Tensor]:
    found: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        found.update(load_file(path))
    return found


def main(out: Path) -> None:
    dirs = checkpoint_dirs(out)
    if not dirs:
        print(f"   checkpoints: none in {out}")
        return
    last = dirs[0]
    ckpt, final = weights(last), weights(out / "final")
    same = ckpt.keys() == final.keys() and all(torch.equal(ckpt[k], final[k]) for k in ckpt)
    optimizer = torch.load(last / "optimizer.pt", map_location="cpu", weights_only=True)
    moments = sum(1 for state in optimizer["state"].values() for v in state.values() if torch.is_tensor(v))
    print(
        f"   checkpoints: {[d.name for d in dirs]} last={last.name} incomplete={incomplete_reason(last)} "
        f"weights_equal_final={same} tensors={len(ckpt)} optimizer_tensors={moments}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
