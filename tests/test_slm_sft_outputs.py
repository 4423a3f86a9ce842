"""SFT features beyond the loss curve: eval_loss from an eval split, a merged export of a LoRA run,
and TensorBoard reports.

Short runs of a tiny local model (tests/_hf_cache.py) in subprocesses serve the tests.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from _hf_cache import build, offline_env, rows, snapshot  # noqa: E402
from odin_slm import train  # noqa: E402

pytestmark = pytest.mark.slow


def _jsonl(path, data):
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = build(tmp_path_factory.mktemp("hf-home"))
    work = tmp_path_factory.mktemp("sft")
    out = work / "run"
    argv = [
        *("--model_name_or_path", str(snapshot(home)), "--output_dir", str(out)),
        *("--dataset_name", _jsonl(work / "train.jsonl", rows(16))),
        *("--eval_dataset_name", _jsonl(work / "eval.jsonl", rows(4, start=20))),
        *("--use_peft", "--lora_r", "4", "--lora_target_modules", "all-linear", "--learning_rate", "0.05"),
        *(
            "--max_steps",
            "3",
            "--per_device_train_batch_size",
            "4",
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "1",
        ),
        *("--merge_lora", "--eval_samples", "4", "--eval_max_new_tokens", "4", "--save_strategy", "no"),
        *("--disable_tqdm", "true"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "odin_slm.train", *argv], capture_output=True, text=True, env=offline_env(home)
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return home, out, json.loads((out / "metrics.json").read_text())


def test_eval_strategy_steps_gives_eval_loss(run):
    _, _, m = run
    curve = m["eval_loss_curve"]
    assert [e["step"] for e in curve] == [1, 2, 3] and all(e["eval_loss"] > 0 for e in curve)
    assert curve[-1]["eval_loss"] < curve[0]["eval_loss"]  # the LoRA run learns


def test_merge_lora_matches_the_adapter_model(run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    home, out, m = run
    assert m["outputs"]["merged_model"] == str(out / "merged")
    assert not (out / "merged" / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(out / "merged")
    ids = tok(["Rewrite 2024-01-05 as DD/MM/YYYY.\n05/01/2024"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(snapshot(home))
        base_logits = base(ids).logits
        adapter = PeftModel.from_pretrained(base, out / "final").eval()
        adapter_logits = adapter(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(out / "merged").eval()(ids).logits
    assert (adapter_logits - base_logits).abs().max() > 1e-3  # the adapter changed the model
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--merge_lora", "--use_peft", "false"], "--use_peft"),
        (["--eval_strategy", "steps", "--eval_samples", "0"], "eval rows"),
        (["--eval_strategy", "steps", "--engine", "loop"], "--engine trl"),
    ],
)
def test_eval_and_merge_misuse_exit_2_before_loading(capsys, tmp_path, argv, needle):
    code = train.main(
        ["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tmp_path / "m"), *argv]
    )
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and needle in err, err


TENSORBOARD = Path(__file__).resolve().parents[1] / ".matrix" / "tensorboard"
READ_EVENTS = """
import json, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
(events,) = {p.parent for p in Path(sys.argv[1]).rglob("events.out.tfevents.*")}
acc = EventAccumulator(str(events))
acc.Reload()
print("EVENTS" + json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
"""


@pytest.fixture(scope="module")
def tensorboard() -> str:
    """tensorboard in a cached --target folder, put only on the trainer's path (not the venv's)."""
    if not (TENSORBOARD / "tensorboard").is_dir():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--target",
            str(TENSORBOARD),
            "tensorboard>=2.14",
        ]
        subprocess.run(cmd, check=True, timeout=900)
    return str(TENSORBOARD)


def test_report_to_tensorboard_writes_the_loss_curve(tensorboard, tmp_path):
    home = build(tmp_path / "hf-home")
    out = tmp_path / "run"
    env = offline_env(home, pythonpath=tensorboard)
    argv = [
        *(
            "--model_name_or_path",
            str(snapshot(home)),
            "--output_dir",
            str(out),
            "--report_to",
            "tensorboard",
        ),
        *("--dataset_name", _jsonl(tmp_path / "train.jsonl", rows(8)), "--eval_samples", "0"),
        *(
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
        ),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "odin_slm.train", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    read = subprocess.run(
        [sys.executable, "-c", READ_EVENTS, str(out)], capture_output=True, text=True, env=env
    )
    assert "EVENTS" in read.stdout, read.stderr[-3000:]
    scalars = json.loads(read.stdout.split("EVENTS", 1)[1])
    curve = json.loads((out / "metrics.json").read_text())["loss_curve"]
    assert [step for step, _ in scalars["train/loss"]] == [e["step"] for e in curve] == [1, 2]
    for (_, value), e in zip(scalars["train/loss"], curve, strict=True):
        assert value == pytest.approx(e["loss"], rel=1e-4)
    assert "train/learning_rate" in scalars


def test_loop_engine_refuses_report_to(capsys, tmp_path):
    argv = ["--engine", "loop", "--report_to", "tensorboard", "--model_name_or_path", str(tmp_path / "m")]
    code = train.main(["--output_dir", str(tmp_path / "o"), *argv])
    assert code == train.EXIT_BAD_INPUT and "--engine trl" in capsys.readouterr().err


TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} says: {{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant says: {% endif %}"
)


def test_chat_template_path_renders_the_training_rows(tmp_path):
    from _hf_cache import tiny_tokenizer
    from odin_slm import data

    home = build(tmp_path / "hf-home")
    chats = [
        {
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["completion"]},
            ]
        }
        for r in rows(4)
    ]
    (tmp_path / "chat.jinja").write_text(TEMPLATE)
    out = tmp_path / "run"
    argv = [
        *("--model_name_or_path", str(snapshot(home)), "--output_dir", str(out), "--eval_samples", "0"),
        *(
            "--dataset_name",
            _jsonl(tmp_path / "chat.jsonl", chats),
            "--chat_template_path",
            str(tmp_path / "chat.jinja"),
        ),
        *(
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "4",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
        ),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "odin_slm.train", *argv], capture_output=True, text=True, env=offline_env(home)
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # One step over all four rows: the tokens trained on are those of the rows rendered by the file's template.
    tok = tiny_tokenizer()
    tok.chat_template = TEMPLATE
    rendered = data.tokenize([data.Row(c, "") for c in chats], "messages", tok, None)
    assert json.loads((out / "metrics.json").read_text())["train_tokens"] == sum(
        len(r["input_ids"]) for r in rendered
    )


def test_chat_template_path_must_be_a_template_file(capsys, tmp_path):
    argv = ["--chat_template_path", "org/tokenizer", "--model_name_or_path", str(tmp_path / "m")]
    code = train.main(["--output_dir", str(tmp_path / "o"), *argv])
    assert code == train.EXIT_BAD_INPUT and ".jinja" in capsys.readouterr().err
