"""odin-train as a drop-in for `trl sft`: TRL's parser and argument classes, its YAML configs and flags.

Fast tests run ``main()`` / ``parse_args`` in-process; the example config from TRL's documentation
trains end to end in a subprocess, on a tiny model and dataset in a Hugging Face cache built by
the tests (tests/_hf_cache.py). tests/test_slm_stacks.py runs the same config on the old stack.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("trl")

from _hf_cache import IMDB, MODEL, build, offline_env  # noqa: E402
from odin_slm import train  # noqa: E402
from odin_slm.config import parse_args  # noqa: E402

# trl's examples/cli_configs/example_config.yaml (used as `trl sft --config config.yaml --output_dir
# test-sft`), with only the model (Qwen/Qwen2.5-0.5B) and dataset (stanfordnlp/imdb, whose layout
# odin-test/imdb copies) swapped for tiny ones in the test cache.
TRL_EXAMPLE_CONFIG = f"""\
# This is an example configuration file of TRL CLI, you can use it for
# SFT like that: `trl sft --config config.yaml --output_dir test-sft`
# The YAML file supports environment variables by adding an `env` field
# as below

# env:
#     CUDA_VISIBLE_DEVICES: 0

model_name_or_path:
  {MODEL}
dataset_name:
  {IMDB}
report_to:
  none
learning_rate:
  0.0001
lr_scheduler_type:
  cosine
"""


# A model and dataset that do not exist: a test that got past its check would stop at once.
NOTHING = ("--model_name_or_path", "/nonexistent/model", "--dataset_name", "/nonexistent/data.jsonl")


def _main(capsys, *argv):
    code = train.main(list(argv))
    return code, capsys.readouterr().err


def test_help_lists_config_and_packaged_names(capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "--config" in out and "gpu-lora" in out and "--dataset_train_split" in out


def test_packaged_config_by_name(tmp_path):
    _, model_args, args, prov = parse_args(
        ["--config", "gpu-full", "--output_dir", str(tmp_path), "--bf16", "false"]
    )
    assert (
        prov["config_file"].endswith("gpu-full.yaml")
        and args.max_steps == 200
        and model_args.use_peft is False
    )


def test_unknown_config_name_lists_the_packaged_ones(capsys):
    code, err = _main(capsys, "--config", "gpu-lorra")
    assert code == train.EXIT_BAD_INPUT and "gpu-lorra" in err and "gpu-lora" in err


def test_arguments_are_trl_classes_with_trl_names(tmp_path):
    import trl

    script, model_args, args, _ = parse_args(
        [
            *("--model_name_or_path", "org/model", "--model_revision", "v1", "--use_peft"),
            *("--lora_target_modules", "q_proj", "v_proj", "--dataset_name", "org/data"),
            *("--dataset_config", "small", "--dataset_train_split", "tr", "--dataset_test_split", "te"),
            *("--output_dir", str(tmp_path)),
        ]
    )
    assert isinstance(script, trl.ScriptArguments) and isinstance(model_args, trl.ModelConfig)
    assert isinstance(args, trl.SFTConfig)
    assert (script.dataset_config, script.dataset_train_split, script.dataset_test_split) == (
        "small",
        "tr",
        "te",
    )
    assert model_args.model_revision == "v1" and model_args.use_peft is True
    assert model_args.lora_target_modules == ["q_proj", "v_proj"]
    # A model or dataset of one's own starts from TRL's defaults, as trl sft does (no odin demo config).
    assert args.max_steps == -1 and args.num_train_epochs == 3


def test_config_env_mapping_sets_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("ODIN_TEST_FROM_YAML", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("env:\n  ODIN_TEST_FROM_YAML: 7\nmax_steps: 2\n")
    _, _, args, _ = parse_args(["--config", str(cfg), "--output_dir", str(tmp_path)])
    assert os.environ.pop("ODIN_TEST_FROM_YAML") == "7" and args.max_steps == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--padding_free", "true"],
        ["--dataset_text_field", "content"],
        ["--load_in_8bit", "true"],
        ["--dataset_streaming", "true"],
    ],
)
def test_options_odin_does_not_carry_out_are_errors(capsys, tmp_path, argv):
    # Refused while parsing, before the (absent) data and model are looked for.
    code, err = _main(capsys, "--output_dir", str(tmp_path / "out"), *NOTHING, *argv)
    assert code == train.EXIT_BAD_INPUT and argv[0] in err and "not supported" in err
    assert not (tmp_path / "out").exists()


def test_unsupported_option_in_yaml_is_an_error(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"max_steps: 2\neos_token: '<|im_end|>'\ndataset_name: {tmp_path / 'absent.jsonl'}\n")
    code, err = _main(capsys, "--config", str(cfg), "--output_dir", str(tmp_path / "out"))
    assert code == train.EXIT_BAD_INPUT and "--eos_token" in err


def run_trl_example(home, out, pythonpath=None):
    cfg = out.parent / "config.yaml"
    cfg.write_text(TRL_EXAMPLE_CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "odin_slm.train", "--config", str(cfg), "--output_dir", str(out)],
        capture_output=True,
        text=True,
        env=offline_env(home, pythonpath),
        timeout=900,
    )


def check_trl_example(out):
    m = json.loads((out / "metrics.json").read_text())
    # TRL's defaults: full fine-tune, 3 epochs of batch 8 over the 8 train rows; the test split evaluates.
    assert m["model"] == MODEL and m["dataset"] == IMDB and m["method"] == "full"
    assert m["global_step"] == 3 and m["train_rows"] == 8 and m["format"] == "text"
    assert (out / "final" / "model.safetensors").is_file()
    return m


@pytest.mark.slow
def test_trl_example_config_runs_unchanged(tmp_path_factory):
    home = build(tmp_path_factory.mktemp("hf-home"))
    out = tmp_path_factory.mktemp("trl-example") / "test-sft"
    proc = run_trl_example(home, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_trl_example(out)


def test_assistant_only_loss_is_accepted_for_chat_rows_only(capsys, tmp_path):
    import trl.trainer.sft_config as sft_config

    if "assistant_only_loss" not in sft_config.SFTConfig.__dataclass_fields__:
        pytest.skip("this trl has no assistant_only_loss")
    _, _, args, _ = parse_args(["--assistant_only_loss", "true", "--output_dir", str(tmp_path)])
    assert args.assistant_only_loss is True  # the default data is chat rows: every assistant turn trains
    text = tmp_path / "t.jsonl"
    text.write_text('{"text": "a"}\n{"text": "b"}\n')
    # Refused after the data is read, before the (absent) model is looked for.
    argv = [
        "--assistant_only_loss",
        "true",
        "--dataset_name",
        str(text),
        "--model_name_or_path",
        "/nonexistent/model",
    ]
    code, err = _main(capsys, *argv, "--output_dir", str(tmp_path / "o"))
    assert code == train.EXIT_BAD_INPUT and "messages" in err


def test_only_options_the_user_set_are_refused():
    # unsloth's SFTConfig fills dataset_num_proc itself: a value the user never asked for is not refused.
    from dataclasses import dataclass

    from odin_slm.config import ConfigError, check_supported

    @dataclass
    class Options:
        dataset_num_proc: int | None = None
        padding_free: bool = False

    check_supported(Options(dataset_num_proc=16), given=set())
    with pytest.raises(ConfigError, match="--padding_free True: not supported"):
        check_supported(Options(padding_free=True), given={"padding_free"})
    with pytest.raises(ConfigError, match="--padding_free True"):
        check_supported(Options(padding_free=True), given={"padding"})  # argparse's prefix of the flag
