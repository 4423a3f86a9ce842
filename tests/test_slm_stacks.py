"""The trainer on the seed's locked stack: transformers 4.47.1, accelerate 1.12.0, trl 0.17.0, peft 0.15.2,
datasets 3.5.0 (with the tokenizers/huggingface_hub/fsspec that transformers 4.47.1 and datasets 3.5.0 accept).

The released wheels go, --no-deps, into a cached --target folder (.matrix/slm-oldstack) that
is put first on PYTHONPATH of the trainer's subprocess; torch and the rest come from the venv.
The latest releases are what the venv itself holds (tests/test_slm_train.py).
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_slm_train import LOSS_TOLERANCE, SHORT, _ok, losses, needs_model, train

pytestmark = [pytest.mark.slow, pytest.mark.matrix]

OLD_STACK = {
    "transformers": "4.47.1",
    "accelerate": "1.12.0",
    "trl": "0.17.0",
    "peft": "0.15.2",
    "datasets": "3.5.0",
    "tokenizers": "0.21.1",
    "huggingface_hub": "0.30.2",
    "fsspec": "2024.12.0",
    "dill": "0.3.8",
    "multiprocess": "0.70.16",
}
TARGET = Path(__file__).resolve().parents[1] / ".matrix" / "slm-oldstack"


@pytest.fixture(scope="module")
def old_stack() -> str:
    """The locked stack as a --target folder (built once, then reused)."""
    stamp = TARGET / ".odin-stack.json"
    if not stamp.is_file() or json.loads(stamp.read_text()) != OLD_STACK:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--upgrade",
            "--target",
            str(TARGET),
        ]
        # trl 0.17 imports rich, datasets 3.5 imports aiohttp: both with their own dependencies.
        subprocess.run([*cmd, *(f"{k}=={v}" for k, v in OLD_STACK.items())], check=True, timeout=900)
        deps = [sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--target", str(TARGET)]
        subprocess.run([*deps, "rich==14.0.0", "aiohttp==3.11.18"], check=True, timeout=900)
        stamp.write_text(json.dumps(OLD_STACK))
    return str(TARGET)


@pytest.fixture(scope="module")
def latest_stack_run(tmp_path_factory) -> Path:
    """The reference: the same short run on the venv's latest releases."""
    out = tmp_path_factory.mktemp("latest") / "run"
    _ok(train(out, *SHORT, "--engine", "trl"))
    return out


@needs_model
def test_old_stack_trains_and_reports(old_stack, latest_stack_run, tmp_path):
    out = tmp_path / "old"
    proc = train(out, *SHORT, "--eval_samples", "2", "--engine", "trl", pythonpath=old_stack)
    _ok(proc)
    m = json.loads((out / "metrics.json").read_text())
    for name in ("transformers", "trl", "accelerate", "peft"):
        assert m["versions"][name] == OLD_STACK[name], m["versions"]
    assert m["eval_after"]["n"] == 2
    # Same tokens, seed and arithmetic: the old stack retraces the latest stack's curve
    # (trl 0.17 logs losses rounded to 4 decimals).
    ref, got = losses(latest_stack_run), losses(out)
    assert len(got) == 4 and max(abs(a - b) for a, b in zip(ref, got, strict=True)) <= LOSS_TOLERANCE, (
        ref,
        got,
    )
    env = json.loads((out / "environment.json").read_text())
    applied = {o["id"] for o in env["odin_compat"]["outcomes"] if o["status"] == "applied"}
    assert applied, "odin_compat applied no repair on the old stack"


@needs_model
def test_old_stack_loop_engine(old_stack, latest_stack_run, tmp_path):
    out = tmp_path / "old-loop"
    _ok(train(out, *SHORT, "--engine", "loop", pythonpath=old_stack))
    ref, got = losses(latest_stack_run), losses(out)
    assert len(got) == 4 and max(abs(a - b) for a, b in zip(ref, got, strict=True)) <= LOSS_TOLERANCE, (
        ref,
        got,
    )


def test_old_stack_runs_the_trl_example_config(old_stack, tmp_path_factory):
    from _hf_cache import build
    from test_slm_trl_cli import check_trl_example, run_trl_example

    home = build(tmp_path_factory.mktemp("hf-home"))
    out = tmp_path_factory.mktemp("trl-example-old") / "test-sft"
    _ok(run_trl_example(home, out, pythonpath=old_stack))
    m = check_trl_example(out)
    assert (
        m["versions"]["trl"] == OLD_STACK["trl"]
        and m["versions"]["transformers"] == OLD_STACK["transformers"]
    )


OLD_STACK_PARSE = """
import trl
from odin_slm.config import ConfigError, parse_args
script, model, args, prov = parse_args(["--config", "gpu-lora", "--bf16", "false", "--output_dir", "o",
                                        "--dataset_config", "c", "--model_revision", "v1"])
assert isinstance(script, trl.ScriptArguments) and isinstance(model, trl.ModelConfig)
assert isinstance(args, trl.SFTConfig) and trl.__version__ == "0.17.0"
assert prov["config_file"].endswith("gpu-lora.yaml") and script.dataset_config == "c"
assert model.model_revision == "v1" and model.use_peft and model.lora_target_modules == "all-linear"
# Carried out through TRL and the Trainer on this stack too (TRL 0.17's packer is checked before training).
for flag in ("--packing", "--push_to_hub"):
    _, _, args, _ = parse_args(["--output_dir", "o", flag, "true"])
    assert getattr(args, flag[2:]) is True, flag
try:
    parse_args(["--output_dir", "o", "--padding_free", "true"])
except ConfigError as exc:
    assert "--padding_free" in str(exc), exc
else:
    raise AssertionError("--padding_free accepted")
print("PARSED")
"""


def test_old_stack_parses_trl_names(old_stack):
    from _hf_cache import odin_src

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([old_stack, odin_src()])}
    proc = subprocess.run(
        [sys.executable, "-c", OLD_STACK_PARSE], capture_output=True, text=True, env=env, timeout=600
    )
    assert "PARSED" in proc.stdout, proc.stderr[-3000:]


def test_old_stack_reads_hub_ids_from_the_cache(old_stack, tmp_path_factory):
    from _hf_cache import CONFIGS, DATASET, MODEL, build, offline_env, python
    from test_slm_hub import PROBE

    home = build(tmp_path_factory.mktemp("hf-home"))
    env = offline_env(home, pythonpath=old_stack)
    proc = python(PROBE, env, MODEL, DATASET, CONFIGS)
    assert "PROBE" in proc.stdout, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("PROBE", 1)[1])
    assert got["main"] == [1, 16, 4] and got["v2"] == [2, 7, 1]  # the same as on the latest stack
    assert got["small"] == [1, 2, 1] and got["large"] == [1, 5, 1] and "validation" in got["no_split"]
    miss = subprocess.run(
        [
            sys.executable,
            "-m",
            "odin_slm.train",
            "--model_name_or_path",
            "odin-test/absent",
            "--output_dir",
            "o",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path_factory.mktemp("miss"),
    )
    assert miss.returncode == 2 and "hf download odin-test/absent" in miss.stderr, miss.stderr[-3000:]
