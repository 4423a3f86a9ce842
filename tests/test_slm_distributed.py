"""`torchrun --nproc_per_node 2 -m odin_slm.train` on CPU (gloo): real data parallelism, odin active in every rank."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
from odin_slm import distributed  # noqa: E402
from test_slm_train import needs_model  # noqa: E402


def test_world_size_and_rank_come_from_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.world_size(), distributed.launcher_rank()) == (1, 0)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")  # mpirun
    assert distributed.world_size() == 4
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun / accelerate launch win
    monkeypatch.setenv("RANK", "1")
    assert (distributed.world_size(), distributed.launcher_rank()) == (2, 1)
    assert distributed.sum_over_ranks(7) == 7  # no process group: the plain value


def test_weights_digest_covers_trainable_weights_only() -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    model[0].requires_grad_(False)
    first = distributed.weights_digest(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)  # frozen: not part of what DDP synchronises
    assert distributed.weights_digest(model) == first
    with torch.no_grad():
        model[1].bias.add_(1e-3)
    assert distributed.weights_digest(model) != first


# What odin's GPU levers set under DDP (fast.ddp_lean): no per-step search for unused parameters. The
# ranks must stay in step with it, for LoRA and for a full fine-tune.
LEAN = ["--ddp_find_unused_parameters", "false"]


@pytest.mark.slow
@needs_model
@pytest.mark.parametrize(
    "extra", [[], LEAN, [*LEAN, "--use_peft", "false"]], ids=["default", "lean-lora", "lean-full"]
)
def test_torchrun_two_ranks_on_cpu(tmp_path: Path, extra: list[str]) -> None:
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun comes with torch"
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "odin_slm.train", "--max_steps", "2",
         "--per_device_train_batch_size", "2", "--max_length", "64", "--eval_samples", "2",
         "--output_dir", str(out), "--disable_tqdm", "true", *extra],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "Rank 0 of 2, odin_compat active" in log and "Rank 1 of 2, odin_compat active" in log, log[-4000:]
    assert log.count("Done in") == 1  # only rank 0 scores and writes

    # Data parallelism, not two copies training alone: the ranks saw different shards, and DDP's
    # gradient all-reduce left them with the same weights.
    pattern = r"Rank (\d): trained on \d+ tokens \(data digest (\w+)\), weights digest (\w+)"
    ranks = {rank: (data, weights) for rank, data, weights in re.findall(pattern, log)}
    assert set(ranks) == {"0", "1"}, log[-4000:]
    assert ranks["0"][0] != ranks["1"][0], "both ranks trained on the same rows"
    assert ranks["0"][1] == ranks["1"][1], "the ranks' weights diverged: gradients were not synchronised"

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == 2
    assert json.loads((out / "environment.json").read_text())["world_size"] == 2
    per_rank = [int(n) for n in re.findall(r"Rank \d: trained on (\d+) tokens", log)]
    assert metrics["train_tokens"] == sum(per_rank)  # summed over ranks
    weights = "model.safetensors" if "--use_peft" in extra else "adapter_model.safetensors"
    assert (out / "final" / weights).is_file()


def test_a_finished_rank_leaves_its_process_group(tmp_path: Path) -> None:
    # a rank that exits with its gloo group alive can abort at interpreter exit
    import torch.distributed as dist

    distributed.leave_process_group()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    distributed.leave_process_group()
    assert not dist.is_initialized()


class _FinishedRecipe:
    """A stand-in for a recipe whose training finished (no model, no data)."""

    def __init__(self, argv: list[str], callbacks: object) -> None:
        self.stop = type("Stop", (), {"restore": lambda self: None})()

    def setup(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():  # as TrainingArguments.device does under a launcher
            dist.init_process_group("gloo", init_method=f"file://{self.store}", rank=0, world_size=1)

    def train(self) -> object:
        return type("Result", (), {"interrupted": False})()

    def write_outputs(self, result: object) -> int:
        return 0


def test_a_run_leaves_the_group_it_created_and_keeps_its_callers(tmp_path: Path, monkeypatch) -> None:
    import torch.distributed as dist

    from odin_slm import train

    monkeypatch.setattr(train, "SFTRecipe", _FinishedRecipe)
    monkeypatch.setattr(train, "import_early", lambda argv: None)
    monkeypatch.setattr(_FinishedRecipe, "store", tmp_path / "own", raising=False)
    assert train.run([]) == 0 and not dist.is_initialized()  # the run's own group: destroyed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'caller'}", rank=0, world_size=1)
    try:
        assert train.run([]) == 0 and dist.is_initialized()  # a library caller's group: kept
        dist.barrier()
    finally:
        dist.destroy_process_group()
