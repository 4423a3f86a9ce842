"""odin_slm.train never loses work and never mixes runs; bad input fails before the model load.

Fast CPU tests: a tiny Llama (one layer, 16 wide) saved as a local HF folder stands in for a
real model where a run must train, and the model load is replaced by a failure elsewhere, so
that a check reached only after the load shows up as a test failure.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import logging
import os
import signal
from pathlib import Path

import pytest

pytest.importorskip("trl")

# Only modules that existed before these checks, so that each test fails on its own on older code.
from odin_slm import model, report, train  # noqa: E402
from odin_slm.engines import loop  # noqa: E402

TINY_RUN = [
    "--engine", "trl",
    "--use_peft", "false",
    "--per_device_train_batch_size", "2",
    "--learning_rate", "1e-3",
    "--max_length", "32",
    "--save_steps", "1",
    "--save_total_limit", "3",
    "--eval_samples", "0",
    "--disable_tqdm", "true",
]  # fmt: skip


def _save_tiny_model(path: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "the", "date", "is", *"abcdefgh"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = [{"text": f"the date is {a} {b}"} for a in "abcd" for b in "efgh"][:8]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _tiny_train(out: Path, tiny: Path, data: Path, *argv: str) -> int:
    return train.main(
        [
            "--output_dir",
            str(out),
            "--model_name_or_path",
            str(tiny),
            "--dataset_name",
            str(data),
            *TINY_RUN,
            *argv,
        ]
    )


@pytest.fixture
def no_model_load(monkeypatch):
    """A bad input must be reported before the model load: reaching the load fails the test."""

    def loaded(*_a, **_k):
        raise AssertionError("the model was loaded before the bad input was reported")

    monkeypatch.setattr(model, "load_model_and_tokenizer", loaded)
    monkeypatch.setattr(model, "load_unsloth", loaded)


def _complete_checkpoint(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


# ------------------------------------------------------------------ checkpoints: only complete ones count


def _interrupted_save(folder: Path) -> None:
    """What ``kill -9`` during a save leaves: any prefix of the files Trainer writes in order."""
    folder.mkdir(parents=True)


def _cut_short_state(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "trainer_state.json").write_text('{"global_step": 6, "log_hist')


def _no_state(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "optimizer.pt").write_bytes(b"")


def _no_weights(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 6}))


@pytest.mark.parametrize("damage", [_interrupted_save, _cut_short_state, _no_state, _no_weights])
def test_latest_skips_an_incomplete_checkpoint_and_warns(tmp_path, caplog, damage):
    good = _complete_checkpoint(tmp_path / "checkpoint-4", 4)
    damage(tmp_path / "checkpoint-6")
    with caplog.at_level(logging.WARNING, logger="odin_slm"):
        assert train.resolve_resume("latest", str(tmp_path)) == str(good)
    assert "checkpoint-6" in caplog.text and "incomplete" in caplog.text


def test_resume_from_an_incomplete_checkpoint_is_refused(capsys, tmp_path, no_model_load):
    _no_state(tmp_path / "out" / "checkpoint-2")
    code = train.main(["--output_dir", str(tmp_path / "out"), "--resume_from_checkpoint", "latest"])
    assert code == train.EXIT_BAD_INPUT and "no complete checkpoint" in capsys.readouterr().err
    code = train.main(
        [
            "--output_dir",
            str(tmp_path / "out"),
            "--resume_from_checkpoint",
            str(tmp_path / "out" / "checkpoint-2"),
        ]
    )
    assert code == train.EXIT_BAD_INPUT and "incomplete" in capsys.readouterr().err


def test_loop_checkpoint_appears_only_when_complete(tmp_path):
    """The loop engine saves under a temporary name: killed mid-save, no checkpoint-N exists."""
    saves = []

    class Accelerator:
        is_main_process, num_processes = True, 1

        def save_state(self, folder):
            folder = Path(folder)
            folder.mkdir(parents=True, exist_ok=True)  # as accelerate does
            (folder / "model.safetensors").write_bytes(b"weights")
            saves.append((folder.name, (tmp_path / "checkpoint-2").exists()))  # a kill here ...

        def wait_for_everyone(self):
            pass

    loop._save(Accelerator(), tmp_path, 2, [{"step": 2, "loss": 1.0}], limit=2)
    assert len(saves) == 1 and saves[0][0] != "checkpoint-2"
    assert saves[0][1] is False  # ... leaves no checkpoint-2 behind
    assert json.loads((tmp_path / "checkpoint-2" / loop.STATE_FILE).read_text())["global_step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-2"]  # no temporary folder left


@pytest.mark.parametrize("engine,lora", [("trl", "true"), ("loop", "false")])
def test_resume_latest_after_a_kill_during_a_save(tmp_path, tiny, tiny_data, caplog, engine, lora):
    out = tmp_path / "run"
    run = ["--engine", engine, "--use_peft", lora]
    assert _tiny_train(out, tiny, tiny_data, "--max_steps", "2", *run) == 0
    (out / "metrics.json").unlink()  # as if the run had been killed after step 2 ...
    _interrupted_save(out / "checkpoint-3")  # ... while saving checkpoint-3
    with caplog.at_level(logging.WARNING, logger="odin_slm"):
        code = _tiny_train(
            out, tiny, tiny_data, "--max_steps", "4", *run, "--resume_from_checkpoint", "latest"
        )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(out / "checkpoint-2") and metrics["global_step"] == 4
    assert "checkpoint-3" in caplog.text and "incomplete" in caplog.text


def _saved_checkpoint(folder: Path, *, loop_engine: bool, lora_rank: int | None) -> Path:
    """A complete checkpoint as the trl or loop engine saves it, for a LoRA run (of a rank) or a full one."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    layer = "model.layers.0.self_attn.q_proj"
    tensors = {f"{layer}.weight": torch.zeros(2, 2)}
    if loop_engine:  # accelerate's save_state: the whole (PEFT) model, one file
        if lora_rank:
            tensors[f"base_model.model.{layer}.lora_A.default.weight"] = torch.zeros(lora_rank, 2)
        save_file(tensors, folder / "model.safetensors")
        (folder / loop.STATE_FILE).write_text(json.dumps({"global_step": 2, "losses": []}))
        return folder
    if lora_rank:  # Trainer: the adapter and its config
        save_file({f"{layer}.lora_A.weight": torch.zeros(lora_rank, 2)}, folder / "adapter_model.safetensors")
        (folder / "adapter_config.json").write_text(json.dumps({"r": lora_rank, "peft_type": "LORA"}))
    else:
        save_file(tensors, folder / "model.safetensors")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    return folder


@pytest.mark.parametrize(
    "saved,argv,named",
    [
        ({"loop_engine": False, "lora_rank": 16}, ["--engine", "loop"], "--engine trl"),
        ({"loop_engine": True, "lora_rank": 16}, ["--engine", "trl"], "--engine loop"),
        ({"loop_engine": False, "lora_rank": None}, ["--use_peft", "true"], "--use_peft false"),
        (
            {"loop_engine": True, "lora_rank": 16},
            ["--engine", "loop", "--use_peft", "false"],
            "--use_peft true",
        ),
        ({"loop_engine": False, "lora_rank": 4}, ["--lora_r", "8"], "--lora_r 4"),
        ({"loop_engine": True, "lora_rank": 4}, ["--engine", "loop", "--lora_r", "8"], "--lora_r 4"),
    ],
)
def test_resume_with_other_settings_exits_2_before_the_model_load(
    capsys, tmp_path, no_model_load, saved, argv, named
):
    """A checkpoint that this run cannot continue used to crash after the model load (optimizer, files)."""
    _saved_checkpoint(tmp_path / "out" / "checkpoint-2", **saved)
    code = train.main(["--output_dir", str(tmp_path / "out"), "--resume_from_checkpoint", "latest", *argv])
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and named in err and "checkpoint-2" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("loop_engine", [False, True])
def test_resume_with_the_same_settings_passes_the_check(loop_engine, tmp_path):
    from odin_slm.checkpoints import check_resume_fits

    for rank in (None, 8):
        folder = _saved_checkpoint(
            tmp_path / f"r{rank}" / "checkpoint-2", loop_engine=loop_engine, lora_rank=rank
        )
        check_resume_fits(
            str(folder), "loop" if loop_engine else "trl", use_peft=bool(rank), lora_r=rank or 16
        )


@pytest.mark.parametrize(
    "argv,saved",
    [
        # HF reads a --save_steps below 1 as a fraction of the run (the loop engine divided by zero)
        (["--max_steps", "4", "--save_steps", "0.5"], ["checkpoint-2", "checkpoint-4"]),
        # --save_strategy epoch saves at each epoch's end (the loop engine never saved)
        (
            ["--max_steps", "-1", "--num_train_epochs", "2", "--save_strategy", "epoch"],
            ["checkpoint-4", "checkpoint-8"],
        ),
        # every --save_steps, and the last step, as Trainer saves
        (["--max_steps", "5", "--save_steps", "2"], ["checkpoint-2", "checkpoint-4", "checkpoint-5"]),
    ],
)
def test_the_loop_engine_saves_checkpoints_where_the_trainer_does(tmp_path, tiny, tiny_data, argv, saved):
    for engine in ("trl", "loop"):
        out = tmp_path / engine
        code = _tiny_train(out, tiny, tiny_data, "--engine", engine, *argv, "--save_total_limit", "10")
        assert code == 0
        assert sorted(p.name for p in out.glob("checkpoint-*")) == saved, engine


def _sigterm_at_train_end():
    """A TrainerCallback that sends this process SIGTERM after the last step, as the Trainer finishes."""
    from transformers import TrainerCallback

    class SigtermAtTrainEnd(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return control

    return SigtermAtTrainEnd()


def test_a_signal_after_the_last_step_still_writes_the_outputs(tmp_path, tiny, tiny_data):
    """SIGTERM while the Trainer finishes (after the last step; no checkpoint saved with
    --save_strategy no) used to exit claiming a checkpoint that did not exist: the run was lost."""
    out = tmp_path / "run"
    code = train.main(
        [
            *("--output_dir", str(out), "--model_name_or_path", str(tiny), "--dataset_name", str(tiny_data)),
            *TINY_RUN,
            *("--max_steps", "3", "--save_strategy", "no"),
        ],
        callbacks=[_sigterm_at_train_end()],
    )
    assert code == 143
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and len(metrics["loss_curve"]) == 3
    assert (out / "final" / "model.safetensors").is_file()


SIGTERM_WHILE_WRITING = """
import os, signal, sys
from odin_slm import report, train

plot = report.plot_losses


def plot_then_signal(*args, **kwargs):  # the outputs are being written: final/ is saved, metrics.json is not
    os.kill(os.getpid(), signal.SIGTERM)
    return plot(*args, **kwargs)


report.plot_losses = plot_then_signal
sys.exit(train.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("engine", ["trl", "loop"])
def test_a_signal_while_the_outputs_are_written_waits_for_them(tmp_path, tiny, tiny_data, engine):
    """SIGTERM during the final write used to kill the run: no metrics.json, the last steps lost."""
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = ["--output_dir", str(out), "--model_name_or_path", str(tiny), "--dataset_name", str(tiny_data)]
    argv += [*TINY_RUN, "--engine", engine, "--max_steps", "3", "--save_strategy", "no"]
    proc = subprocess.run(
        [sys.executable, "-c", SIGTERM_WHILE_WRITING, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=600,
    )
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 3
    assert (out / "final" / "model.safetensors").is_file() and (out / "loss.png").is_file()
    assert "outputs are complete" in proc.stderr


# ------------------------------------------------------------------ one output_dir, one run


def test_reusing_an_output_dir_is_refused_then_overwritten(capsys, tmp_path, tiny, tiny_data):
    out = tmp_path / "run"
    assert _tiny_train(out, tiny, tiny_data, "--max_steps", "3") == 0
    first = (out / "metrics.json").read_text()

    # A second run into the same folder would rotate the first run's checkpoints away.
    assert _tiny_train(out, tiny, tiny_data, "--max_steps", "2") == train.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert (
        "--resume_from_checkpoint latest" in err and "--overwrite_output_dir" in err and "checkpoint-3" in err
    )
    assert (out / "metrics.json").read_text() == first and (out / "checkpoint-3").is_dir()

    assert _tiny_train(out, tiny, tiny_data, "--max_steps", "2", "--overwrite_output_dir") == 0
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert train.resolve_resume("latest", str(out)) == str(out / "checkpoint-2")


def test_an_interrupted_run_is_not_restarted_over_its_checkpoints(capsys, tmp_path, no_model_load):
    _complete_checkpoint(tmp_path / "out" / "checkpoint-10", 10)
    assert train.main(["--output_dir", str(tmp_path / "out")]) == train.EXIT_BAD_INPUT
    assert "another run" in capsys.readouterr().err
    assert (tmp_path / "out" / "checkpoint-10" / "trainer_state.json").is_file()


def test_unrelated_files_do_not_block_an_output_dir(tmp_path):
    from odin_slm import preflight

    (tmp_path / "notes.txt").write_text("mine")
    assert preflight.check_reuse(str(tmp_path), None, overwrite=False) == []


# ------------------------------------------------------------------ the model cache


@pytest.fixture
def stub_gguf(monkeypatch, tmp_path, tiny):
    """A .gguf whose reading returns the tiny model: convert_gguf's own code runs, in seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    real_model, real_tokenizer = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained
    reads = []

    def model_from(folder, *args, gguf_file=None, **kwargs):
        if gguf_file:
            reads.append(gguf_file)
            return real_model(tiny)
        return real_model(folder, *args, **kwargs)

    def tokenizer_from(folder, *args, gguf_file=None, **kwargs):
        return real_tokenizer(tiny) if gguf_file else real_tokenizer(folder, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", model_from)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", tokenizer_from)
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    return gguf, reads


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_last_byte])
def test_a_damaged_model_cache_is_rebuilt_with_a_warning(stub_gguf, tmp_path, caplog, damage):
    gguf, reads = stub_gguf
    model.load_model_and_tokenizer(str(gguf))
    weights = next((tmp_path / "cache").rglob("model.safetensors"))
    size = weights.stat().st_size
    damage(weights)
    with caplog.at_level(logging.WARNING, logger="odin_slm"):
        loaded, _, _ = model.load_model_and_tokenizer(str(gguf))
    assert "damaged" in caplog.text and "rebuilding" in caplog.text
    assert len(reads) == 2 and weights.stat().st_size == size
    assert loaded.config.num_hidden_layers == 1


def test_a_cut_short_model_folder_exits_2(capsys, tmp_path, tiny):
    import shutil

    folder = Path(shutil.copytree(tiny, tmp_path / "model"))
    _truncate(folder / "model.safetensors")
    code = train.main(["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(folder)])
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and "Could not load" in err and str(folder) in err


def test_an_intact_model_cache_is_reused(stub_gguf):
    gguf, reads = stub_gguf
    first = model.convert_gguf(gguf)
    assert model.convert_gguf(gguf) == first and len(reads) == 1
    assert model.cache_problem(first) is None


# ------------------------------------------------------------------ outputs written atomically


def test_outputs_never_follow_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("metrics.json.tmp", ".metrics.json.tmp"):
        (out / name).symlink_to(victim)
    report.write_json(out / "metrics.json", {"global_step": 3})
    assert victim.read_text() == "precious"
    assert json.loads((out / "metrics.json").read_text()) == {"global_step": 3}
    assert (
        not (out / "metrics.json").is_symlink() and oct((out / "metrics.json").stat().st_mode)[-3:] == "644"
    )
    assert sorted(p.name for p in out.iterdir()) == [".metrics.json.tmp", "metrics.json", "metrics.json.tmp"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    report.write_json(path, {"run": 1})
    with pytest.raises(RuntimeError), report.atomic_file(path) as fh:
        fh.write("{half")
        raise RuntimeError("killed half-way")
    assert json.loads(path.read_text()) == {"run": 1} and [p.name for p in tmp_path.iterdir()] == [
        "metrics.json"
    ]


# ------------------------------------------------------------------ bad input: exit 2, before the model load


def _non_utf8_jsonl(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    return ["--dataset_name", str(path)], f"{path}:2"


def _bracket_before_the_data_list(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "train.json"
    path.write_text(
        '{"source": "notes [draft]", "tags": ["a", "b"],\n "data": [\n  {"text": "a"},\n  {"text": ""}\n]}\n'
    )
    return ["--dataset_name", str(path)], f"{path}:4"


def _json_lines_named_json(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "train.json"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    return ["--dataset_name", str(path)], f"{path}:2"


def _output_dir_is_a_file(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "out").write_text("not a folder")
    return [], "is a file"


def _output_dir_not_writable(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "locked").mkdir(mode=0o555)
    return ["--output_dir", str(tmp_path / "locked" / "out")], "not writable"


def _yaml_value_of_the_wrong_type(key: str, value: str):
    def case(tmp_path: Path) -> tuple[list[str], str]:
        path = tmp_path / "sft.yaml"
        path.write_text(f"logging_steps: 1\n{key}: {value}\n")
        return ["--config", str(path)], f"{path}:2: '{key}'"

    return case


BAD_INPUTS = {
    "non-utf8-jsonl": _non_utf8_jsonl,
    "json-bracket-before-data": _bracket_before_the_data_list,
    "json-lines-named-json": _json_lines_named_json,
    "batch-size-0": lambda _: (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size"),
    "max-steps-negative": lambda _: (["--max_steps", "-5"], "--max_steps"),
    "grad-accumulation-0": lambda _: (
        ["--gradient_accumulation_steps", "0"],
        "--gradient_accumulation_steps",
    ),
    "eval-batch-size-0": lambda _: (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size"),
    "learning-rate-negative": lambda _: (["--learning_rate", "-1"], "--learning_rate"),
    "lora-r-0": lambda _: (["--use_peft", "true", "--lora_r", "0"], "--lora_r"),
    "eval-on-start-without-eval-rows": lambda _: (
        ["--eval_on_start", "true", "--eval_samples", "0"],
        "--eval_on_start",
    ),
    "save-strategy-best-without-eval": lambda _: (["--save_strategy", "best"], "--save_strategy best"),
    "save-strategy-best-without-metric": lambda _: (
        ["--save_strategy", "best", "--eval_strategy", "steps"],
        "--metric_for_best_model",
    ),
    "report-to-unknown": lambda _: (["--report_to", "tensorboardx"], "--report_to tensorboardx"),
    # HF's parser takes --padding-free for --padding_free: refused all the same, not ignored
    "unsupported-flag-dashed": lambda _: (["--padding-free", "true"], "--padding_free"),
    "yaml-float-for-int": _yaml_value_of_the_wrong_type("max_length", "8.5"),
    "yaml-float-seed": _yaml_value_of_the_wrong_type("seed", "1.5"),
    "yaml-list-for-float": _yaml_value_of_the_wrong_type("learning_rate", "[1, 2]"),
    "yaml-bool-for-int": _yaml_value_of_the_wrong_type("max_steps", "true"),
    "output-dir-file": _output_dir_is_a_file,
    "output-dir-not-writable": _output_dir_not_writable,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_before_the_model_load(case, capsys, tmp_path, monkeypatch, no_model_load):
    argv, named = BAD_INPUTS[case](tmp_path)
    real_access = os.access
    # Tests may run as root, for whom every folder is writable: answer as for a normal user.
    monkeypatch.setattr(os, "access", lambda p, mode: "locked" not in str(p) and real_access(p, mode))
    code = train.main(["--output_dir", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and named in err, err
    assert "Traceback" not in err


def test_report_to_a_tracker_that_is_not_installed_exits_2_before_the_model_load(
    capsys, tmp_path, no_model_load
):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    code = train.main(["--output_dir", str(tmp_path / "out"), "--report_to", "wandb"])
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and "--report_to wandb" in err and "pip install wandb" in err, err


def test_yaml_values_of_the_right_type_still_parse(tmp_path):
    from odin_slm.config import parse_args

    path = tmp_path / "sft.yaml"
    path.write_text(
        "max_length: 64\nlearning_rate: 1\nmax_steps: '3'\nuse_peft: true\nseed: 7\n"
        "lora_target_modules: [q_proj, v_proj]\nlr_scheduler_kwargs: {}\nmodel_revision: null\n"
    )
    _, model_args, args, _ = parse_args(["--config", str(path), "--output_dir", str(tmp_path / "out")])
    assert (args.max_length, args.learning_rate, args.max_steps, args.seed) == (64, 1.0, 3, 7)
    assert model_args.use_peft and list(model_args.lora_target_modules) == ["q_proj", "v_proj"]


# ------------------------------------------------------------------ trust_remote_code


def _folder_with_its_own_code(folder: Path, marker: Path, tiny: Path) -> Path:
    """A model folder whose config class is its own Python file, which leaves ``marker`` when it runs."""
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny / name).read_bytes())
    (folder / "config.json").write_text(
        json.dumps(
            {"model_type": "odin_probe", "auto_map": {"AutoConfig": "configuration_probe.ProbeConfig"}}
        )
    )
    (folder / "configuration_probe.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n\n"
        "class ProbeConfig(PretrainedConfig):\n    model_type = 'odin_probe'\n"
    )
    return folder


def test_a_model_folders_code_never_runs_by_default(capsys, tmp_path, monkeypatch, tiny):
    marker = tmp_path / "code-ran"
    folder = _folder_with_its_own_code(tmp_path / "custom", marker, tiny)
    monkeypatch.setattr("builtins.input", lambda *_a: "y")  # a user who answers transformers' prompt
    code = train.main(["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(folder)])
    assert not marker.exists(), "the model folder's code ran"
    err = capsys.readouterr().err
    assert code == train.EXIT_BAD_INPUT and "--trust_remote_code true" in err


@pytest.mark.parametrize("flag,expected", [([], False), (["--trust_remote_code", "true"], True)])
def test_trust_remote_code_is_always_passed_explicitly(tmp_path, tiny, monkeypatch, flag, expected):
    from transformers import AutoTokenizer

    calls = []

    def spy(folder, *args, **kwargs):
        calls.append(kwargs)
        raise OSError("stop after the first load call")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy)
    code = train.main(["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tiny), *flag])
    assert code == train.EXIT_BAD_INPUT
    assert calls and calls[0].get("trust_remote_code", "not passed") is expected


@pytest.mark.parametrize("flag,expected", [([], False), (["--trust_remote_code", "true"], True)])
def test_the_model_rebuilt_after_fsdp_keeps_trust_remote_code(tmp_path, tiny, monkeypatch, flag, expected):
    """After FSDP, rank 0 loads the model again for the gathered weights: with the run's own
    --trust_remote_code (an SFTConfig field on trl 1.x), or a model with its own code fails there."""
    from odin_slm.config import parse_args

    _, model_args, args, _ = parse_args(
        ["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tiny), *flag]
    )
    calls = []

    def spy(name, **kwargs):
        calls.append(kwargs)
        raise model.ModelError("stop after the load call")

    monkeypatch.setattr(model, "load_model_and_tokenizer", spy)
    with pytest.raises(model.ModelError):
        model.model_from_state_dict(model_args, {}, "cpu", args)
    assert calls[0]["trust_remote_code"] is expected
