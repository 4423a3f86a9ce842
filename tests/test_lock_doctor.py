"""`odin-compat doctor --lock FILE`: one realistic lock of each format (tests/locks/), read
without installing or importing anything of the stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odin_compat import apidiff, forecast, locks

SRC = Path(__file__).resolve().parents[1] / "src"
LOCKS = Path(__file__).resolve().parent / "locks"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run([sys.executable, "-m", "odin_compat", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def lock_json(name: str, *extra: str) -> dict:
    proc = cli("--lock", str(LOCKS / name), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_uv_lock_the_fp8_report_stack_is_repaired_by_odin() -> None:
    lock = locks.read(LOCKS / "uv.lock")
    assert (
        lock.kind == "uv"
        and lock.version("unsloth") == "2025.3.3"
        and lock.version("huggingface_hub") == "0.30.2"
    )
    assert lock.version("my-finetune") == "0.1.0"  # the project itself (virtual source) is read too
    result = lock_json("uv.lock")
    assert result["stack"]["accelerate"] == "1.12.0" and result["stack"]["unsloth"] == "2025.3.3"
    (crash,) = result["crashes"]
    assert "FP8BackendType" in crash["error"] and crash["repaired"] and "healer" in crash["odin"]
    assert result["not_repaired"] == 0
    repairs = {r["id"] for r in result["repairs"]}
    assert {"trl-sfttrainer-tokenizer", "peft-prepare-model-for-int8-training"} <= repairs
    assert "transformers-adamw" not in repairs  # transformers 4.47.1 still has AdamW
    text = cli("--lock", str(LOCKS / "uv.lock")).stdout
    assert "odin repairs it" in text and "needs odin active" in text and "`import odin_compat` first" in text


def test_poetry_lock_a_crash_odin_cannot_repair_comes_with_the_pins_that_avoid_it() -> None:
    lock = locks.read(LOCKS / "poetry.lock")
    assert lock.kind == "poetry" and lock.pins["sentence-transformers"] == ["2.2.2"]
    result = lock_json("poetry.lock")
    (crash,) = result["crashes"]
    assert "cached_download" in crash["error"] and not crash["repaired"]
    assert crash["avoid"] == ["sentence-transformers>=2.3.0", "huggingface_hub<0.26.0"]
    text = cli("--lock", str(LOCKS / "poetry.lock")).stdout
    assert "odin cannot repair it; pins that avoid it (any one): `sentence-transformers>=2.3.0`" in text
    assert "1 not repairable" in text


def test_pylock_toml() -> None:
    lock = locks.read(LOCKS / "pylock.toml")
    assert lock.kind == "pylock" and lock.version("trl") == "0.11.4"
    assert "my-trainer" not in lock.pins  # a directory entry carries no version
    result = lock_json("pylock.toml")
    assert [c["error"].split(" (")[0] for c in result["crashes"]] == [
        "TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer'"
    ]
    assert result["crashes"][0]["repaired"]
    assert {"transformers-trainer-tokenizer", "transformers-adamw"} <= {r["id"] for r in result["repairs"]}


def test_requirements_txt_with_hashes_markers_and_an_include() -> None:
    lock = locks.read(LOCKS / "requirements.txt")
    assert lock.kind == "requirements"
    assert lock.pins == {
        "accelerate": ["0.31.0"], "huggingface-hub": ["0.30.2"], "peft": ["0.15.2"], "torch": ["2.2.2"],
        "transformers": ["4.51.3"], "trl": ["0.17.0"],
    }  # fmt: skip
    assert lock.unpinned == ["datasets>=3.0"]
    result = lock_json("requirements.txt")
    crashes = {c["error"].split(" ")[0] + ("+" if c["repaired"] else "-") for c in result["crashes"]}
    assert crashes == {
        "ImportError:+",
        "AttributeError:-",
    }  # clear_device_cache repaired, get_default_device not
    assert (result["repaired"], result["not_repaired"]) == (1, 1)


@pytest.mark.parametrize(
    ("name", "code"), [("uv.lock", 0), ("pylock.toml", 0), ("poetry.lock", 1), ("requirements.txt", 1)]
)
def test_lock_check_exit_code(name: str, code: int) -> None:
    assert cli("--lock", str(LOCKS / name), "--check").returncode == code


def test_an_unreadable_lock_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "weird.lock"
    bad.write_text("[tool]\nx = 1\n")
    proc = cli("--lock", str(bad))
    assert proc.returncode == 2 and "unknown lock format" in proc.stderr
    assert cli("--lock", str(tmp_path / "missing.txt")).returncode == 2


def test_the_format_is_sniffed_from_content(tmp_path: Path) -> None:
    renamed = tmp_path / "ci.lock"
    renamed.write_bytes((LOCKS / "poetry.lock").read_bytes())
    assert locks.read(renamed).kind == "poetry"
    renamed = tmp_path / "pylock.gpu.toml"
    renamed.write_bytes((LOCKS / "pylock.toml").read_bytes())
    assert locks.read(renamed).kind == "pylock"


def test_lock_mode_imports_nothing_of_the_stack() -> None:
    code = (
        "import sys; from odin_compat import forecast, locks;"
        f"forecast.forecast(locks.read({str(LOCKS / 'uv.lock')!r}));"
        "print(sorted(m for m in ('torch', 'transformers', 'accelerate', 'trl', 'peft') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    env["PYTHONPATH"] = str(SRC)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_api_diff_data_adds_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "api_diff.json"
    data.write_text(json.dumps({"symbols": [
        {"module": "peft", "name": "prepare_model_for_int8_training", "dist": "peft", "missing": ">=0.10.0",
         "used_by": [{"dist": "trl", "versions": "<0.9", "where": "trl/trainer/utils.py:12"}]},
        {"module": "huggingface_hub", "name": "cached_download", "dist": "huggingface-hub", "missing": ">=0.26.0",
         "used_by": [{"dist": "trl", "versions": ">=0.17"}]},
        {"module": "broken"},  # malformed: skipped
    ]}))  # fmt: skip
    monkeypatch.setattr(apidiff, "PATH", data)
    assert len(apidiff.entries()) == 2
    lock = locks.Lock(tmp_path / "x", "requirements")
    for name, version in (("peft", "0.15.2"), ("trl", "0.8.6"), ("huggingface_hub", "0.30.2")):
        lock.add(name, version)
    result = forecast.forecast(lock)
    (crash,) = result[
        "crashes"
    ]  # trl 0.8.6 needs int8 from peft 0.15.2; hub 0.30.2 still has cached_download
    assert crash["repaired"] and "peft-prepare-model-for-int8-training" in crash["odin"]
    assert crash["source"] == "API diff (trl/trainer/utils.py:12)"
    monkeypatch.setattr(apidiff, "PATH", tmp_path / "absent.json")
    assert apidiff.entries() == [] and forecast.forecast(lock)["crashes"] == []
