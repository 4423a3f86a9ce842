"""``scripts/gpu/clocked_train.py``, the clock the GPU measurements run under, checked on CPU.

Device time is scarce: a clock that breaks is found here, not in the middle of a measuring call.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_slm_train import SHORT, needs_model

pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu" / "clocked_train.py"


def _clock():
    spec = importlib.util.spec_from_file_location("clocked_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "levers, message",
    [
        ('{"import_compiler": "later"}', "main or thread"),
        ('{"no_such_lever": 1}', "no such lever no_such_lever"),
    ],
)
def test_a_lever_it_does_not_know_stops_the_run(monkeypatch, tmp_path, levers, message):
    from odin_slm import fast

    before = dict(fast.DEFAULTS)
    monkeypatch.setenv("ODIN_LEVERS", levers)
    monkeypatch.setattr(sys, "argv", ["clocked_train.py", str(tmp_path / "steps.json")])
    with pytest.raises(SystemExit, match=message):
        _clock().main()
    assert fast.DEFAULTS == before  # refused before it touched odin's defaults


@pytest.mark.parametrize("warmed", [False, True])
@pytest.mark.parametrize("how", ["main", "thread"])
def test_the_compiler_is_imported_early_only_where_the_run_warmed_its_workers(monkeypatch, how, warmed):
    clock = _clock()
    # a light stand-in for the compiler's modules: the choice of when is what is tested here
    monkeypatch.setattr(clock, "COMPILER_MODULES", ("colorsys",))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    rec: dict = {}

    class Recipe:
        def _warm_compiler(self) -> None:
            if warmed:  # what watch_compile_workers records when the recipe starts the workers
                rec["compile_workers_asked_s"] = 0.1

    seen = clock.import_compiler_early(Recipe, how, time.perf_counter(), rec)
    Recipe()._warm_compiler()
    deadline = time.monotonic() + 10
    while warmed and not seen and time.monotonic() < deadline:  # the thread's own pace
        time.sleep(0.01)
    if warmed:
        assert list(seen) == [f"compiler_imports_{how}"]
        assert seen[f"compiler_imports_{how}"]["s"] >= 0
        assert "colorsys" in sys.modules
    else:
        assert seen == {}
        assert "colorsys" not in sys.modules


@needs_model
@pytest.mark.slow
def test_the_clock_splits_the_setup_before_the_first_step(tmp_path):
    steps_json = tmp_path / "steps.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ODIN_LEVERS": ""}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(steps_json), "--output_dir", str(tmp_path / "run"), *SHORT],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rec = json.loads(steps_json.read_text())
    assert len(rec["steps"]) == 4 and rec["steps"] == sorted(rec["steps"])
    assert len(rec["saves"]) == 2  # save_steps 2 over 4 steps
    phases = rec["phases"]
    # the CPU run takes the plain path: no fast.tune, no compile workers
    assert list(phases) == ["arguments", "data", "warm_compiler", "model", "adapter"]
    assert "compile_workers_asked_s" not in rec
    ends = [p["end_s"] for p in phases.values()]
    assert rec["stack_imports_s"] <= ends[0] and ends == sorted(ends)
    assert ends[-1] <= rec["imports_s"] <= rec["process_s"]
    assert all(p["s"] >= 0 for p in phases.values())
