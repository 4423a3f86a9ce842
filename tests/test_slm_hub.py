"""Hub model and dataset ids, read through a Hugging Face cache that the tests build (no hub here).

The trainer runs in a subprocess with ``HF_HOME`` pointing at the cache and ``HF_HUB_OFFLINE=1``,
so transformers' and datasets' own lookups (refs, snapshots, revisions) are what is tested.
"""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json
import subprocess
import sys

import pytest

pytest.importorskip("trl")

from _hf_cache import CONFIGS, DATASET, MODEL, build, offline_env, python  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    return build(tmp_path_factory.mktemp("hf-home"))


def train(env, *argv):
    return subprocess.run(
        [sys.executable, "-m", "odin_slm.train", *argv], capture_output=True, text=True, env=env, timeout=600
    )


def test_hub_model_and_dataset_train_offline(hf_home, tmp_path):
    out = tmp_path / "run"
    proc = train(
        offline_env(hf_home),
        *("--model_name_or_path", MODEL, "--dataset_name", DATASET, "--output_dir", str(out)),
        *("--max_steps", "2", "--per_device_train_batch_size", "4", "--use_peft", "--lora_r", "4"),
        *(
            "--eval_samples",
            "2",
            "--eval_max_new_tokens",
            "4",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
        ),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == MODEL and m["dataset"] == DATASET and m["method"] == "lora"
    # The train split trains; the dataset's own test split is the eval split.
    assert m["train_rows"] == 16 and m["eval_rows"] == 2 and m["global_step"] == 2
    assert (out / "final" / "adapter_model.safetensors").is_file()


PROBE = """
import json, sys
from odin_slm.config import parse_args
from odin_slm.data import DataError, load_splits
from odin_slm.model import load_args, load_model_and_tokenizer

def load(*flags):
    script, model_args, args, _ = parse_args(["--output_dir", "unused", *flags])
    model, _, _ = load_model_and_tokenizer(model_args.model_name_or_path, **load_args(model_args, args))
    splits = load_splits(script.dataset_name, None, 32, 0, config=script.dataset_config,
                         train_split=script.dataset_train_split, test_split=script.dataset_test_split,
                         revision=script.dataset_revision)
    return [model.config.num_hidden_layers, len(splits.train), len(splits.eval)]

def error(*flags):
    try:
        load(*flags)
    except DataError as exc:
        return str(exc)

model, dataset, configs = sys.argv[1:]
base = ["--model_name_or_path", model, "--dataset_name", dataset]
print("PROBE" + json.dumps({
    "main": load(*base),
    "v2": load(*base, "--model_revision", "v2", "--dataset_revision", "v2"),
    "small": load("--model_name_or_path", model, "--dataset_name", configs, "--dataset_config", "small"),
    "large": load("--model_name_or_path", model, "--dataset_name", configs, "--dataset_config", "large"),
    "test_as_train": load(*base, "--dataset_train_split", "test", "--dataset_test_split", "none"),
    "no_split": error(*base, "--dataset_train_split", "validation"),
    "no_config": error("--model_name_or_path", model, "--dataset_name", configs, "--dataset_config", "huge"),
}))
"""


@pytest.fixture(scope="module")
def probe(hf_home):
    proc = python(PROBE, offline_env(hf_home), MODEL, DATASET, CONFIGS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.split("PROBE", 1)[1])


def test_revisions_select_their_snapshots(probe):
    # refs/main: 1 layer, 16 train + 4 test rows; refs/v2: 2 layers, 8 train rows (1 held out for eval).
    assert probe["main"] == [1, 16, 4]
    assert probe["v2"] == [2, 7, 1]


def test_dataset_configs_and_splits(probe):
    assert probe["small"][1:] == [3 - 1, 1] and probe["large"][1:] == [6 - 1, 1]
    assert probe["test_as_train"][1] == 4 - 1
    assert "no split 'validation'" in probe["no_split"] and "train, test" in probe["no_split"]
    assert "huge" in probe["no_config"] and "small" in probe["no_config"]


def test_cache_miss_exits_2_with_the_download_command(hf_home, tmp_path):
    env = offline_env(hf_home)
    proc = train(env, "--model_name_or_path", "odin-test/absent", "--output_dir", str(tmp_path / "a"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "not in the Hugging Face cache" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    assert "hf download odin-test/absent" in proc.stderr and "Traceback" not in proc.stderr
    proc = train(
        env, "--model_name_or_path", MODEL, "--model_revision", "v9", "--output_dir", str(tmp_path / "b")
    )
    assert proc.returncode == 2 and f"hf download {MODEL} --revision v9" in proc.stderr, proc.stderr[-3000:]
    proc = train(env, "--dataset_name", "odin-test/no-data", "--output_dir", str(tmp_path / "c"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "hf download --repo-type dataset odin-test/no-data" in proc.stderr


def test_parquet_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from odin_slm import data

    path = tmp_path / "train.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]), path
    )
    rows = data.read_rows(path)
    assert [r.data["completion"] for r in rows] == ["b", "d"] and rows[1].where == f"{path}:row 1"
    assert data.validate(rows) == "prompt-completion"


def test_hub_loads_pin_trust_remote_code_off_unless_asked(monkeypatch):
    import torch
    import transformers

    from odin_slm import model
    from odin_slm.config import parse_args

    calls = []

    def tokenizer(*args, **kwargs):
        calls.append(kwargs)

    def causal_lm(*args, **kwargs):
        calls.append(kwargs)
        raise OSError("recorded")  # stops the load: only the arguments are under test

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", causal_lm)
    flags = ["--trust_remote_code", "true", "--dtype", "bfloat16", "--attn_implementation", "eager"]
    for given, trusted in (([], False), (flags, True)):
        calls.clear()
        _, model_args, args, _ = parse_args(["--model_name_or_path", "org/name", "--output_dir", "o", *given])
        with pytest.raises(model.ModelError):
            model.load_model_and_tokenizer("org/name", **model.load_args(model_args, args))
        assert [c["trust_remote_code"] for c in calls] == [trusted, trusted]
        assert [c["revision"] for c in calls] == ["main", "main"]
    dtype = calls[1].get("dtype", calls[1].get("torch_dtype"))
    assert dtype is torch.bfloat16 and calls[1]["attn_implementation"] == "eager"
