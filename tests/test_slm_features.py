"""Options that odin-train carries out through TRL and the Trainer: packing, push_to_hub, load_in_4bit.

Packing and pushing train a tiny model for real. The Hub is a local stand-in (tests/_fake_hub.py)
that the real huggingface_hub client talks to over HTTP (``HF_ENDPOINT``), so what the Trainer
uploads is what is checked. 4-bit loading (QLoRA) trains for real on the CPU with bitsandbytes'
CPU backend (bitsandbytes 0.45 or later, in the dev extra); scripts/gpu/qlora.sh runs it on a GPU.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from _fake_hub import FakeHub  # noqa: E402
from odin_slm import model, train  # noqa: E402
from test_slm_safety import TINY_RUN, _save_tiny_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def no_model_load(monkeypatch):
    """A refusal must come before the model load: reaching the load fails the test."""

    def loaded(*_a, **_k):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(model, "load_model_and_tokenizer", loaded)
    monkeypatch.setattr(model, "load_unsloth", loaded)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    lines = [{"text": f"the date is {a} {b}"} for a in "abcd" for b in "efgh"][:12]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path


def _train(out: Path, tiny: Path, data: Path, *argv: str) -> int:
    base = ["--output_dir", str(out), "--model_name_or_path", str(tiny), "--dataset_name", str(data)]
    return train.main([*base, *TINY_RUN, *argv])


# ------------------------------------------------------------------ packing


def test_packing_trains_fewer_longer_sequences_on_the_same_tokens(tmp_path, tiny, rows):
    epoch = ["--max_steps", "-1", "--num_train_epochs", "1", "--save_strategy", "no"]
    assert _train(tmp_path / "plain", tiny, rows, *epoch) == 0
    assert _train(tmp_path / "packed", tiny, rows, *epoch, "--packing", "true") == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    packed = json.loads((tmp_path / "packed" / "metrics.json").read_text())
    assert plain["packing"] is False and packed["packing"] is True
    # 12 rows of 6 tokens (with <s> and </s>) fit into 3 sequences of at most --max_length 32 tokens.
    assert plain["train_rows"] == packed["train_rows"] == 12 and plain["train_sequences"] == 12
    assert packed["train_sequences"] == 3
    # One epoch at batch 2: a step per 2 sequences, and every token of every row still trains once.
    assert plain["global_step"] == 6 and packed["global_step"] == math.ceil(3 / 2)
    assert packed["train_tokens"] == plain["train_tokens"] == 12 * 6
    assert all(math.isfinite(e["loss"]) for e in packed["loss_curve"])
    assert (tmp_path / "packed" / "final" / "model.safetensors").is_file()


def test_packing_is_refused_by_the_loop_engine(capsys, tmp_path, tiny, rows, no_model_load):
    code = _train(tmp_path / "out", tiny, rows, "--engine", "loop", "--packing", "true")
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and "--packing" in err and "--engine trl" in err


# ------------------------------------------------------------------ push_to_hub


def _subprocess_train(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "odin_slm.train", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_push_to_hub_uploads_the_model_card_weights_and_outputs(tmp_path, tiny, rows):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    with FakeHub() as hub:
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), PYTHONUNBUFFERED="1")
        proc = _subprocess_train(
            env,
            *("--output_dir", str(out), "--model_name_or_path", str(tiny), "--dataset_name", str(rows)),
            *TINY_RUN,
            *("--max_steps", "2", "--use_peft", "true", "--lora_r", "4", "--save_strategy", "no"),
            *("--push_to_hub", "true", "--hub_model_id", "me/tiny-sft", "--hub_token", "hf_test"),
            *("--hub_private_repo", "true"),
        )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert hub.unknown == []
    assert len(hub.created) == 1 and hub.created[0]["name"] == "tiny-sft"
    created = hub.created[0]
    assert created["organization"] == "me"
    # --hub_private_repo: huggingface_hub 1.x sends "visibility", earlier releases "private".
    assert created.get("visibility") == "private" or created.get("private") is True, created
    assert created["authorization"] == "Bearer hf_test"
    files = hub.files("me/tiny-sft")
    # Trainer.push_to_hub: the adapter and tokenizer at the top, with TRL's model card ...
    assert files["adapter_model.safetensors"] == (out / "adapter_model.safetensors").read_bytes()
    assert "adapter_config.json" in files and "tokenizer.json" in files
    assert b"trl" in files["README.md"].lower()
    # ... and the run's outputs, metrics.json last written before the push.
    assert (
        files["final/adapter_model.safetensors"] == (out / "final" / "adapter_model.safetensors").read_bytes()
    )
    assert json.loads(files["metrics.json"])["global_step"] == 2
    assert not any(name.startswith("checkpoint-") for name in files)


def test_push_to_hub_offline_is_refused_before_training(
    capsys, tmp_path, tiny, rows, monkeypatch, no_model_load
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    code = _train(tmp_path / "out", tiny, rows, "--push_to_hub", "true", "--hub_model_id", "me/x")
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and "--push_to_hub" in err and "HF_HUB_OFFLINE" in err
    assert not (tmp_path / "out").exists()


def test_push_to_hub_is_refused_by_the_loop_engine(capsys, tmp_path, tiny, rows, no_model_load):
    code = _train(tmp_path / "out", tiny, rows, "--engine", "loop", "--push_to_hub", "true")
    assert code == train.EXIT_BAD_INPUT and "--engine trl" in capsys.readouterr().err


# ------------------------------------------------------------------ load_in_4bit (QLoRA)


@pytest.mark.parametrize("extra,needle", [(["--use_peft", "false"], "--use_peft"), ([], "--use_peft")])
def test_load_in_4bit_without_lora_is_refused_before_the_model_load(
    capsys, tmp_path, tiny, rows, no_model_load, extra, needle
):
    code = _train(tmp_path / "out", tiny, rows, "--load_in_4bit", "true", *extra)
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and "--load_in_4bit" in err and needle in err, err
    assert not (tmp_path / "out").exists()


def test_load_in_4bit_needs_bitsandbytes(tmp_path, monkeypatch):
    import importlib.util

    import torch

    from odin_slm.config import parse_args

    argv = ["--load_in_4bit", "true", "--use_peft", "true", "--output_dir", str(tmp_path)]
    _, model_args, _, _ = parse_args(argv)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine ...
    real = importlib.util.find_spec
    monkeypatch.setattr(  # ... without bitsandbytes
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    with pytest.raises(model.ModelError, match="bitsandbytes"):
        model.check_quantization(model_args)


def test_qlora_trains_a_lora_adapter_on_4bit_weights(tmp_path, tiny, rows):
    pytest.importorskip("bitsandbytes", minversion="0.45")  # its CPU backend
    from transformers import TrainerCallback

    seen = {}

    class Inspect(TrainerCallback):  # what the trainer really trains: 4-bit base layers under LoRA
        def on_step_end(self, args, state, control, model=None, **kw):
            seen.setdefault("kinds", {type(m).__name__ for m in model.modules()})
            seen.setdefault("trainable", [n for n, p in model.named_parameters() if p.requires_grad])

    out = tmp_path / "out"
    base = ["--output_dir", str(out), "--model_name_or_path", str(tiny), "--dataset_name", str(rows)]
    argv = [*base, *TINY_RUN, "--load_in_4bit", "true", "--use_peft", "true", "--lora_r", "4"]
    assert train.main(argv, callbacks=[Inspect()]) == 0
    assert "Linear4bit" in seen["kinds"]
    assert seen["trainable"] and all("lora_" in n for n in seen["trainable"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "lora" and metrics["global_step"] > 0
    assert all(math.isfinite(e["loss"]) for e in metrics["loss_curve"])
    assert json.loads((out / "final" / "adapter_config.json").read_text())["r"] == 4


def test_a_4bit_model_is_prepared_for_kbit_training_before_lora(tiny, monkeypatch):
    import peft

    from odin_slm.config import parse_args

    prepared = []

    def prepare(m, use_gradient_checkpointing=True):
        prepared.append(use_gradient_checkpointing)
        return m

    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", prepare)
    base, _, _ = model.load_model_and_tokenizer(str(tiny))
    base.is_loaded_in_4bit = True  # as bitsandbytes' loading marks it
    _, model_args, _, _ = parse_args(["--use_peft", "true", "--lora_r", "4", "--output_dir", "/tmp/x"])
    wrapped = model.apply_lora(base, model_args, gradient_checkpointing=False)
    assert prepared == [False] and hasattr(wrapped, "peft_config")


def test_packing_counts_the_same_tokens_when_padded_to_a_multiple(tmp_path, tiny, rows):
    """On CUDA the levers set pad_to_multiple_of=64 for every compiled run; TRL then pads the padding-free row."""
    epoch = ["--max_steps", "-1", "--num_train_epochs", "1", "--save_strategy", "no", "--packing", "true"]
    assert _train(tmp_path / "packed", tiny, rows, *epoch, "--pad_to_multiple_of", "64") == 0
    packed = json.loads((tmp_path / "packed" / "metrics.json").read_text())
    assert packed["train_tokens"] == 12 * 6
