"""`odin-compat doctor`: readable and --json, on the FP8 report's pins and on the latest releases."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from matrix import SRC, target

FP8_REPORT = ("unsloth==2025.3.3", "transformers==4.47.1", "accelerate==1.12.0", "trl==0.17.0")
LATEST = ("transformers==5.24.0", "accelerate==1.15.0", "trl==1.16.0", "peft==0.21.2")


def doctor(*args: str, folders: tuple = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, folders), str(SRC)])
    cmd = [sys.executable, "-m", "odin_compat", "doctor", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_json_has_versions_and_records() -> None:
    report = json.loads(doctor("--json").stdout)
    assert {"versions", "records", "system", "preloaded", "known_bad", "known_good"} <= set(report)
    assert report["versions"]["torch"].startswith("2.")
    assert len(report["records"]) >= 28
    for row in report["records"]:
        assert {"id", "applies", "reason", "fixes", "source"} <= set(row), row
        assert isinstance(row["applies"], bool) and row["reason"] and row["fixes"] and row["source"]
    assert report["preloaded"] == []
    assert report["exec_hook"] == "compiled"  # the install built the healer's hook in C


def test_text_says_when_the_exec_hook_runs_in_python() -> None:
    from odin_compat import doctor as doctor_module

    report = doctor_module.collect()
    assert "runs in Python" not in doctor_module.render(report)
    report["exec_hook"] = "python"
    assert "the healer's exec hook runs in Python" in doctor_module.render(report)


def test_doctor_imports_no_target_library() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    env["PYTHONPATH"] = str(SRC)
    code = (
        "import sys; from odin_compat import doctor; doctor.collect(); "
        "print(sorted(m for m in ('transformers', 'accelerate', 'trl', 'peft', 'unsloth', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.matrix
def test_fp8_report_environment_reports_the_fp8_combination() -> None:
    folder = target(*FP8_REPORT)
    report = json.loads(doctor("--json", folders=(folder,)).stdout)
    assert report["versions"]["unsloth"] == "2025.3.3" and report["versions"]["accelerate"] == "1.12.0"
    bad = [b for b in report["known_bad"] if "FP8BackendType" in b["error"]]
    assert bad and "healed" in bad[0]["odin"], report["known_bad"]
    text = doctor(folders=(folder,)).stdout
    assert "FP8BackendType" in text and "unsloth 2025.3.3 matches" in text
    assert "```toml" in text and '"transformers>=4.45,<4.46",' in text  # pre-FP8 pins, paste-ready


@pytest.mark.matrix
def test_latest_environment() -> None:
    folder = target(*LATEST)
    report = json.loads(doctor("--json", folders=(folder,)).stdout)
    assert report["versions"]["transformers"] == "5.24.0"
    applies = {r["id"] for r in report["records"] if r["applies"]}
    assert {"transformers-adamw", "transformers-trainer-tokenizer", "trl-completion-only-collator"} <= applies
    assert "transformers-trainer-processing-class" not in applies
    assert report["known_bad"] == []
    assert "### Records" in doctor(folders=(folder,)).stdout


def test_readable_output_sections() -> None:
    text = doctor().stdout
    for heading in ("## odin-compat doctor", "### Installed versions", "### Known-bad combinations found",
                    "### Records", "### Imported before odin_compat", "### Known-good pin sets"):  # fmt: skip
        assert heading in text


def test_catalogue_is_in_step_with_the_records() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "odin_compat", "catalogue"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (SRC.parent / "docs" / "catalogue.md").read_text(encoding="utf-8")
    assert out == committed, (
        "docs/catalogue.md is stale: run `python -m odin_compat catalogue -o docs/catalogue.md`"
    )
