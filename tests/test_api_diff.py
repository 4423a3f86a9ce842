"""The API-diff report: its markdown is a pure function of the committed JSON (no network, no wheels)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "odin_compat" / "data" / "api_diff.json"


def _tool():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("api_diff", ROOT / "tools" / "api_diff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_report_renders_from_the_json() -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    coverage = json.loads((ROOT / "docs" / "api-diff-coverage.json").read_text(encoding="utf-8"))
    assert _tool().render(data, coverage) == (ROOT / "docs" / "api-diff.md").read_text(encoding="utf-8")


def test_json_is_small_and_well_formed() -> None:
    assert DATA.stat().st_size < 1_000_000
    tool = _tool()
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert set(data["libraries"]) == set(tool.RELEASES)
    for lib, lib_data in data["libraries"].items():
        assert lib_data["releases"] == list(tool.RELEASES[lib])
        for row in tool.rows(data, lib):
            assert row["kind"] in tool.KINDS and row["class"] in tool.CLASSES, row
            assert row["gone_in"] in lib_data["releases"] and row["last"] in lib_data["releases"], row


def test_a_folder_without_init_holds_no_api(tmp_path: Path) -> None:
    # trl 0.8-0.12: `trl/commands/scripts/` (no __init__.py) held example scripts that the CLI runs by path,
    # each with its own `ScriptArguments`; trl had no public `ScriptArguments` before 0.12.
    files = {
        "lib/__init__.py": "",
        "lib/trainer/__init__.py": "from .sft_config import SFTConfig\n",
        "lib/trainer/sft_config.py": "class SFTConfig:\n    max_seq_length: int = 1\n",
        "lib/commands/__init__.py": "",
        "lib/commands/scripts/sft.py": "class ScriptArguments:\n    dataset: str = ''\n",
        "lib/commands/scripts/config/__init__.py": "class Stray:\n    x: int = 0\n",  # below a non-package
        "lib/kernels/src/setup.py": "def build():\n    pass\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    tool = _tool()
    modules = tool._modules(tmp_path, "lib")
    assert set(modules) == {"lib", "lib.trainer", "lib.trainer.sft_config", "lib.commands"}
    release = tool.Release("lib", "0", tmp_path)
    assert "ScriptArguments" not in release.classes and "Stray" not in release.classes
    assert release.dataclass_names(("ScriptArguments", "Stray", "re:.*Config$@lib.trainer")) == ["SFTConfig"]
    assert release.fields("SFTConfig") == {"max_seq_length": "SFTConfig"}
    assert "ScriptArguments" not in release.defined and "build" not in release.defined


def test_no_example_script_field_in_the_data() -> None:
    # Fields of trl's example-script `ScriptArguments` (trl/commands/scripts/*.py) are no removed API:
    # with odin, `--dataset` on a TrlParser must still be refused by argparse, not silently dropped.
    tool = _tool()
    data = json.loads(DATA.read_text(encoding="utf-8"))
    script_only = {"dataset", "hf_hub_aesthetic_model_filename", "hf_hub_aesthetic_model_id", "hf_hub_model_id",
                   "pretrained_model", "pretrained_revision", "use_lora"}  # fmt: skip
    rows = tool.rows(data, "trl")
    found = {r["name"] for r in rows if r["kind"] == "field" and r["where"] == "ScriptArguments"}
    # the public trl.ScriptArguments (trl/utils.py from 0.12.2, later trl/scripts/utils.py)
    assert found == {"config", "gradient_checkpointing_use_reentrant"}
    restore = json.loads((DATA.parent / "restore.json").read_text(encoding="utf-8"))
    fields = {r["name"] for r in restore["fields"] if r["lib"] == "trl" and r["where"] == "ScriptArguments"}
    assert fields == found and not fields & script_only


def test_flag_translation_is_what_the_keyword_records_do() -> None:
    import dataclasses

    from odin_compat.repairs.transformers import translate_flags

    @dataclasses.dataclass
    class TrainingArguments:  # a stand-in of the same name: translation keys on the class name
        output_dir: str = ""
        eval_strategy: str = "no"
        warmup_steps: float = 0

    @dataclasses.dataclass
    class Mine:
        no_cuda: bool = False  # a script's own field keeps its flag

    args = [
        "--evaluation_strategy=steps",
        "--warmup_ratio",
        "0.1",
        "--overwrite_output_dir",
        "--no_cuda",
        "--x",
    ]
    out, done = translate_flags([TrainingArguments, Mine], args)
    assert out == ["--eval_strategy", "steps", "--warmup_steps", "0.1", "--no_cuda", "--x"]
    assert done == ["evaluation_strategy", "warmup_ratio", "overwrite_output_dir"]
    out, _ = translate_flags(
        [TrainingArguments], ["--warmup_ratio", "0.1", "--warmup_steps", "5", "--group_by_length", "False"]
    )
    assert out == ["--warmup_steps", "5"]  # warmup_steps overrides the ratio; a false flag adds nothing
    out, _ = translate_flags([TrainingArguments], ["--warmup_rat", "0.5", "--eval_strat", "no"])
    assert out == ["--warmup_steps", "0.5", "--eval_strat", "no"]  # a prefix of a current option stays


def test_explain_names_the_release_and_the_replacement() -> None:
    from odin_compat.explain import explain

    tf = explain(ImportError("cannot import name 'TFAutoModel' from 'transformers' (/x/__init__.py)"))
    assert tf is not None and "after 4.57.1" in tf and "TensorFlow" in tf
    field = explain(TypeError("SFTConfig.__init__() got an unexpected keyword argument 'max_seq_length'"))
    assert field is not None and "field of `SFTConfig`" in field and "trl after 0.19.1" in field
    assert explain(ImportError("No module named 'trl.commands.cli_utils'")).startswith(
        "odin_compat: `trl.commands`"
    )
    assert explain(ImportError("cannot import name 'nothing_here' from 'transformers'")) is None
    assert explain(ValueError("unrelated")) is None


def test_an_uncaught_error_about_a_removal_says_which_release_removed_it() -> None:
    # The script's first error with odin: a TensorFlow class transformers 5 no longer has.
    from _releases import run_python

    code = "import odin_compat\nfrom transformers import TFAutoModel\n"
    proc = run_python(code)
    assert proc.returncode == 1
    assert "ImportError: cannot import name 'TFAutoModel'" in proc.stderr
    assert (
        "odin_compat: `TFAutoModel` (name of `transformers`) was removed from transformers after 4."
        in proc.stderr
    )
    assert "no longer supported: use the PyTorch class" in proc.stderr
    plain = run_python(code, env={"ODIN_COMPAT_DISABLE": "1"})
    assert "odin_compat:" not in plain.stderr
