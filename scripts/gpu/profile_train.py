"""Where an odin_slm.train step's time goes on the GPU: ``python scripts/gpu/profile_train.py OUT.json TRAIN_ARGS...``.

Runs ``odin_slm.train`` with TRAIN_ARGS and three windows of optimizer steps:
- steps 20-50: wall time per step, nothing attached;
- steps 50-70: cProfile of the host (top functions by own and cumulative time);
- steps 70-73: torch.profiler (GPU busy time per step, kernels per step, top ops).
"""

import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from train_throughput import _profiler_class  # noqa: E402

from odin_slm import train  # noqa: E402

rec: dict = {"argv": sys.argv[2:]}


class Windows(TrainerCallback):
    def __init__(self) -> None:
        self.prof = cProfile.Profile()

    def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
        if state.global_step in (20, 50):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()
        if state.global_step == 50:
            self.prof.enable()

    def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
        if state.global_step == 50:
            torch.cuda.synchronize()
            rec["wall_ms_per_step"] = 1e3 * (time.perf_counter() - self.t0) / 30
        if state.global_step == 70:
            self.prof.disable()
            torch.cuda.synchronize()
            rec["cprofile_wall_ms_per_step"] = 1e3 * (time.perf_counter() - self.t0) / 20
            for key in ("tottime", "cumulative"):
                text = io.StringIO()
                pstats.Stats(self.prof, stream=text).sort_stats(key).print_stats(45)
                rec[f"cprofile_{key}"] = text.getvalue()


rc = train.main(sys.argv[2:], callbacks=[Windows(), _profiler_class(70, 3, rec)])
rec["rc"] = rc
Path(sys.argv[1]).write_text(json.dumps(rec, indent=1))
print(
    "wall ms/step",
    rec.get("wall_ms_per_step"),
    "gpu busy ms/step",
    rec.get("profile", {}).get("gpu_busy_ms_per_step"),
)
sys.exit(rc)
