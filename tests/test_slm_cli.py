"""odin_slm.train: bad input gets a clear message, a non-zero exit, and leaves no output behind.

These run ``main()`` in-process and fail before any model is loaded, so they are quick.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json

import pytest

pytest.importorskip("trl")

from odin_slm import train  # noqa: E402
from odin_slm.config import parse_args  # noqa: E402


def _run(capsys, tmp_path, *argv):
    out = tmp_path / "out"
    code = train.main(["--output_dir", str(out), *argv])
    err = capsys.readouterr().err
    assert not out.exists() or not (out / "metrics.json").exists()
    return code, err


def test_missing_model_path(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "--model_name_or_path", str(tmp_path / "no-such-model"))
    assert code == train.EXIT_BAD_INPUT
    assert "Model path not found" in err and "Hub model id" in err
    assert not (tmp_path / "out").exists()


def test_unknown_config_key(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 3\nlerning_rate: 1.0e-4\n")
    code, err = _run(capsys, tmp_path, "--config", str(cfg))
    assert code == train.EXIT_BAD_INPUT
    assert f"{cfg}:2: unknown key 'lerning_rate'" in err and "did you mean 'learning_rate'" in err


def test_unknown_flag(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "--max_step", "3")
    assert code == train.EXIT_BAD_INPUT and "--max_step" in err and "max_steps" in err


def test_bad_engine_and_unsloth_without_gpu(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "--engine", "fast")
    assert code == train.EXIT_BAD_INPUT and "engine" in err
    import torch

    if not torch.cuda.is_available():
        code, err = _run(capsys, tmp_path, "--engine", "unsloth")
        assert code == train.EXIT_BAD_INPUT and "unsloth" in err


def test_empty_dataset(capsys, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, err = _run(capsys, tmp_path, "--dataset_name", str(empty))
    assert code == train.EXIT_BAD_INPUT and "empty" in err and "empty.jsonl" in err


def test_malformed_row_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n" + json.dumps({"prompt": "a"}) + "\n")
    code, err = _run(capsys, tmp_path, "--dataset_name", str(bad))
    assert code == train.EXIT_BAD_INPUT and f"{bad}:2" in err and "'completion'" in err


def test_resume_without_checkpoint(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "--resume_from_checkpoint", "latest")
    assert code == train.EXIT_BAD_INPUT and "no checkpoint" in err


def test_out_of_memory_is_explained(capsys, tmp_path, monkeypatch):
    import torch

    from odin_slm import model

    def oom(*_a, **_k):
        # The exception CUDA raises; no GPU here, so the allocation failure itself is simulated.
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "load_model_and_tokenizer", oom)
    code, err = _run(capsys, tmp_path, "--engine", "trl")
    assert code == train.EXIT_OOM and "out of memory" in err and "per_device_train_batch_size" in err


@pytest.mark.parametrize(
    "line, expected",
    [
        ("learning_rate: abc", "'learning_rate' expects a number, got 'abc'"),
        ("max_steps: three", "'max_steps' expects an integer, got 'three'"),
        ("use_peft: maybe", "'use_peft' expects true or false, got 'maybe'"),
    ],
)
def test_a_yaml_string_of_the_wrong_type_names_the_file_not_a_flag(capsys, tmp_path, line, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"logging_steps: 1\n{line}\n")
    code, err = _run(capsys, tmp_path, "--config", str(cfg))
    assert code == train.EXIT_BAD_INPUT
    assert f"{cfg}:2: {expected}" in err and "argument --" not in err


@pytest.mark.parametrize("text", ["", "# max_steps: 3\n", "---\n"])
def test_a_config_file_without_settings_is_refused(capsys, tmp_path, text):
    # it used to run the built-in defaults, as if --config had not been given
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    # (the missing dataset ends a run that accepts the file quickly, before any training)
    code, err = _run(capsys, tmp_path, "--config", str(cfg), "--dataset_name", str(tmp_path / "none"))
    assert code == train.EXIT_BAD_INPUT and f"{cfg}: no settings" in err and "leave out --config" in err


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "max_steps: 3\nlearning_rate: 1.0e-4\nmax_steps: 5\n",
            ":3: 'max_steps' is set twice (first on line 1)",
        ),
        ("max_steps: 3\nenv:\n  A: '1'\n  A: '2'\n", ":4: 'A' is set twice (first on line 3)"),
    ],
)
def test_a_key_set_twice_in_a_config_file_is_refused(capsys, tmp_path, text, expected):
    # plain YAML keeps the last value without a word
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    code, err = _run(capsys, tmp_path, "--config", str(cfg), "--dataset_name", str(tmp_path / "none"))
    assert code == train.EXIT_BAD_INPUT and f"{cfg}{expected}" in err


def test_a_merge_key_may_be_overridden(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: &b {max_steps: 3}\nmodel_init_kwargs:\n  <<: *b\n  max_steps: 4\n")
    from odin_slm.config import read_yaml

    values, lines = read_yaml(str(cfg))
    assert values["model_init_kwargs"] == {"max_steps": 4} and lines == {"base": 1, "model_init_kwargs": 2}


@pytest.mark.parametrize(
    "key, flag, message",
    [
        ("dataset_name", None, "Dataset not found"),
        ("model_name_or_path", None, "Model path not found"),
        ("dataset_name", "--max_steps", "Dataset not found"),
    ],
)
def test_a_missing_path_from_a_config_file_names_its_line(capsys, tmp_path, key, flag, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"max_steps: 3\n\n{key}: {tmp_path / 'nowhere'}\n")
    code, err = _run(capsys, tmp_path, "--config", str(cfg), *([flag, "2"] if flag else []))
    assert code == train.EXIT_BAD_INPUT and message in err and f"({key} is set at {cfg}:3)" in err


def test_a_missing_path_given_as_a_flag_names_no_config_line(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"max_steps: 3\ndataset_name: {tmp_path / 'a'}\n")
    code, err = _run(capsys, tmp_path, "--config", str(cfg), "--dataset_name", str(tmp_path / "b"))
    assert code == train.EXIT_BAD_INPUT and f"{tmp_path / 'b'}" in err and "is set at" not in err


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"max_steps: 3\nrun_name: a\x07b\n", ": not valid YAML: "),  # PyYAML's reader refuses it
        (b"max_steps: 3\n\x00", ": not valid YAML: "),
        (b"max_steps: 3\nrun_name: caf\xe9\n", ": not UTF-8 text"),  # Latin-1
        (b"{}\n", ": no settings"),
        (b"max_steps: 3\n1: 2\n", ":2: unknown key '1'"),  # a key YAML reads as a number
        (b'"1": a\n1: b\n', ":1: unknown key '1'"),  # the string key, on its own line
        (b"max_steps: 3\ndataset_name: 2024\n", ":2: 'dataset_name' expects text"),
        (b"max_steps: 3\nmodel_name_or_path: 1.5\n", ":2: 'model_name_or_path' expects text"),
    ],
)
def test_a_bad_config_file_exits_2_with_its_name_not_a_traceback(capsys, tmp_path, content, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    code, err = _run(capsys, tmp_path, "--config", str(cfg), "--dataset_name", str(tmp_path / "none"))
    assert code == train.EXIT_BAD_INPUT and f"{cfg}{expected}" in err and "Traceback" not in err


def test_a_folder_given_as_config_is_named_a_folder(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "--config", str(tmp_path))
    assert code == train.EXIT_BAD_INPUT and f"{tmp_path}: a folder" in err


def test_a_merged_key_may_be_overridden_whatever_the_order_yaml_builds_it(tmp_path):
    # the anchored mapping is flattened when the later mapping merges it, before it is built itself
    cfg = tmp_path / "c.yaml"
    cfg.write_text("fsdp_config:\n  a: &d\n    <<: {k: 1}\n    k: 2\naccelerator_config:\n  <<: *d\n")
    import yaml

    from odin_slm.config import read_yaml

    values, _ = read_yaml(str(cfg))
    assert values == yaml.safe_load(cfg.read_text()) and values["fsdp_config"]["a"] == {"k": 2}


def test_the_config_line_named_is_the_one_whose_path_is_missing(capsys, tmp_path, monkeypatch):
    # `chat.jsonl` is also part of `eval/chat.jsonl`: only the missing one's line is named
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chat.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 3\ndataset_name: chat.jsonl\neval_dataset_name: eval/chat.jsonl\n")
    code, err = _run(capsys, tmp_path, "--config", str(cfg))
    assert code == train.EXIT_BAD_INPUT and err.count(" is set at ") == 1
    assert f"(eval_dataset_name is set at {cfg}:3)" in err


def test_a_relative_dataset_path_from_a_config_file_names_its_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 3\ndataset_name: ./data/train.jsonl\n")
    code, err = _run(capsys, tmp_path, "--config", str(cfg))
    assert code == train.EXIT_BAD_INPUT and f"(dataset_name is set at {cfg}:2)" in err


def test_yaml_strings_that_convert_are_accepted(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: '3e-4'\nmax_steps: '7'\nuse_peft: 'true'\n")
    _, model_args, args, _ = parse_args(["--config", str(cfg), "--output_dir", str(tmp_path)])
    assert args.learning_rate == 3e-4 and args.max_steps == 7 and model_args.use_peft is True


def test_yaml_and_flags_precedence(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 7\nlearning_rate: 3e-4\nlora_r: 4\nper_device_train_batch_size: 2\n")
    script, model_args, args, _ = parse_args(
        ["--config", str(cfg), "--max_steps", "9", "--output_dir", str(tmp_path)]
    )
    assert args.max_steps == 9 and args.learning_rate == 3e-4 and args.per_device_train_batch_size == 2
    assert model_args.lora_r == 4 and script.engine == "auto"


def test_config_is_read_without_a_removed_flag_warning(tmp_path, monkeypatch):
    # --config is odin-train's own option: odin_compat's translation of flags that TRL removed
    # (ScriptArguments.config went in trl 0.15.2) must leave it alone and not warn about it
    import warnings

    from odin_compat import _adapters

    monkeypatch.setattr(_adapters, "_warned", set())  # warn_once's memory: a fresh process's
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 7\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, args, _ = parse_args(["--config", str(cfg), "--output_dir", str(tmp_path)])
    assert args.max_steps == 7
    assert not [w for w in caught if "removed from this release" in str(w.message)]


def test_cpu_defaults_turn_bf16_off(tmp_path):
    import torch

    _, _, args, _ = parse_args(["--output_dir", str(tmp_path)])
    if not torch.cuda.is_available():
        assert args.bf16 is False and args.fp16 is False
    assert args.report_to in ("none", [], ["none"]) or not args.report_to


def test_packaged_configs_parse(tmp_path):
    from odin_slm.config import packaged_config

    for name in ("cpu-default.yaml", "gpu-lora.yaml", "gpu-full.yaml"):
        _, model_args, args, _ = parse_args(
            ["--config", str(packaged_config(name)), "--output_dir", str(tmp_path), "--bf16", "false"]
        )
        assert args.max_steps > 0, name
    assert model_args.use_peft is False  # gpu-full


def test_ctrl_c_before_training_exits_130_without_a_traceback(capsys, tmp_path, monkeypatch):
    # Ctrl-C while the model loads: training's signal handler is not installed yet
    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", interrupted_load)
    code = train.main(["--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 130
    assert "odin-train: interrupted" in err and "Traceback" not in err
