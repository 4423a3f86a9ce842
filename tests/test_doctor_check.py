"""`odin-compat doctor --check`: exit 1 on a known crash odin does not repair, or when odin is
needed (the FP8 combination) and nothing activates it; 0 otherwise. The environment state comes
from fake distribution metadata first on sys.path; start-up activation is looked for in a temp
folder (so an `odin-compat install` in the test venv cannot decide the result)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from odin_compat import gate

SRC = Path(__file__).resolve().parents[1] / "src"

FP8 = {"unsloth": "2025.3.3", "accelerate": "1.12.0"}
CACHED_DOWNLOAD = {"sentence-transformers": "2.2.2", "huggingface_hub": "0.26.2"}
# Run the CLI with start-up activation looked for in $ODIN_TEST_SITE instead of site-packages.
MAIN = (
    "import os, sys, pathlib; from odin_compat import _startup, __main__;"
    "_startup.site_dir = lambda: pathlib.Path(os.environ['ODIN_TEST_SITE']);"
    "sys.exit(__main__.main(sys.argv[1:]))"
)


def fake_dists(root: Path, dists: dict[str, str]) -> Path:
    for name, version in dists.items():
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def check(tmp_path: Path, dists: dict[str, str], *args: str, startup: bool = False, env: dict | None = None,
          prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:  # fmt: skip
    site = tmp_path / "site"
    site.mkdir(parents=True, exist_ok=True)
    if startup:
        from odin_compat import _startup

        _startup.install(site)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    full.update(PYTHONPATH=os.pathsep.join([str(fake_dists(tmp_path / "dists", dists)), str(SRC)]),
                ODIN_TEST_SITE=str(site))  # fmt: skip
    full.update(env or {})
    cmd = [*prefix, sys.executable, "-c", MAIN, "doctor", "--check", *args]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_fp8_combination_without_activation_fails(tmp_path: Path) -> None:
    proc = check(tmp_path, FP8)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr
    assert (
        "FAIL: odin is needed here but nothing activates it (NameError: name 'FP8BackendType'" in proc.stdout
    )


def test_fp8_combination_with_start_up_activation_passes(tmp_path: Path) -> None:
    proc = check(tmp_path, FP8, startup=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "ok: start-up activation is installed" in proc.stdout and "PASS" in proc.stdout


def test_fp8_combination_with_an_entry_script_that_imports_odin_first(tmp_path: Path) -> None:
    good, bad = tmp_path / "train.py", tmp_path / "late.py"
    good.write_text(
        '"""Train."""\nfrom __future__ import annotations\nimport odin_compat\nfrom unsloth import x\n'
    )
    bad.write_text("import os\nfrom unsloth import FastLanguageModel\nimport odin_compat\n")
    assert check(tmp_path, FP8, "--entry", str(good)).returncode == 0
    proc = check(tmp_path / "b", FP8, "--entry", str(good), "--entry", str(bad))
    assert proc.returncode == 1 and "late.py:1 imports os before odin_compat" in proc.stdout


def test_fp8_combination_under_odin_compat_run_passes(tmp_path: Path) -> None:
    prefix = (sys.executable, "-m", "odin_compat", "run", "--")
    env = {"PYTHONPATH": os.pathsep.join([str(fake_dists(tmp_path / "d2", FP8)), str(SRC)])}
    proc = check(tmp_path, {}, prefix=prefix, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "ok: started by `odin-compat run`" in proc.stdout


def test_disabled_odin_fails_where_it_is_needed(tmp_path: Path) -> None:
    proc = check(tmp_path, FP8, startup=True, env={"ODIN_COMPAT_DISABLE": "1"})
    assert proc.returncode == 1 and "ODIN_COMPAT_DISABLE is set" in proc.stdout


def test_a_crash_odin_does_not_repair_fails_even_with_odin_active(tmp_path: Path) -> None:
    proc = check(tmp_path, CACHED_DOWNLOAD, "--json", startup=True)
    assert proc.returncode == 1
    import json

    result = json.loads(proc.stdout)["check"]
    (problem,) = result["problems"]
    assert (
        "cached_download" in problem
        and "`sentence-transformers>=2.3.0` or `huggingface_hub<0.26.0`" in problem
    )


def test_a_clean_environment_passes(tmp_path: Path) -> None:
    proc = check(tmp_path, {"accelerate": "1.12.0", "transformers": "4.47.1"})
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "PASS" in proc.stdout


def test_plain_doctor_still_exits_0_on_the_fp8_combination(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(fake_dists(tmp_path, FP8)), str(SRC)])
    proc = subprocess.run(
        [sys.executable, "-m", "odin_compat", "doctor"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "FP8BackendType" in proc.stdout and "### Check" not in proc.stdout


@pytest.mark.parametrize(
    ("source", "first"),
    [
        ("import odin_compat\n", True),
        ("from odin_compat import heal\nimport torch\n", True),
        ('"""doc"""\nfrom __future__ import annotations\nimport odin_compat\n', True),
        ("import torch, odin_compat\n", False),
        ("print('no imports')\n", False),
    ],
)
def test_imports_odin_first(tmp_path: Path, source: str, first: bool) -> None:
    script = tmp_path / "s.py"
    script.write_text(source)
    assert gate.imports_odin_first(script)[0] is first
