"""`odin-compat scan`: names imported from the stack that the installed stack lacks, found
statically, on a small synthetic environment (real distribution metadata, fake packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

ACCELERATE = {  # an accelerate that predates clear_device_cache and FP8BackendType
    "accelerate/__init__.py": "from .accelerator import Accelerator\n__version__ = '0.31.0'\n",
    "accelerate/accelerator.py": "class Accelerator:\n    pass\n",
    "accelerate/utils/__init__.py": "from .memory import release_memory\nfrom .imports import *\n",
    "accelerate/utils/imports.py": "__all__ = ['is_xpu_available']\ndef is_xpu_available():\n    return False\n",
    "accelerate/utils/memory.py": "def release_memory(*objects):\n    return []\n",
}
IMPORTER = {
    "mylib/__init__.py": """\
from typing import TYPE_CHECKING
import accelerate
from accelerate.utils import release_memory, is_xpu_available
from accelerate.utils.memory import clear_device_cache
from accelerate.utils import FP8BackendType
if TYPE_CHECKING:
    from accelerate import Ghost
try:
    from accelerate import Optional
except ImportError:
    Optional = None


def f():
    from accelerate.utils import memory
    return accelerate.utils.memory.gone(), accelerate.Accelerator
""",
}


def install(site: Path, dist: str, version: str, files: dict[str, str]) -> None:
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    record = [f"{info.name}/METADATA,,"]
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
        record.append(f"{rel},,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def scan(site: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    code = (
        "import json, sys; from odin_compat import scan;"
        f"r = scan.scan(path=[{str(site)!r}], include_guarded=True);"
        "r['heavy'] = sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules);"
        "print(json.dumps(r))"
    )
    env["PYTHONPATH"] = str(SRC)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_scan_finds_missing_names_with_file_line_and_repair(tmp_path: Path) -> None:
    install(tmp_path, "accelerate", "0.31.0", ACCELERATE)
    install(tmp_path, "mylib", "1.0", IMPORTER)
    result = scan(tmp_path)
    assert result["heavy"] == []  # nothing imported
    found = {(f["line"], f["name"]): f for f in result["findings"]}
    assert set(found) == {(4, "clear_device_cache"), (5, "FP8BackendType"), (9, "Optional"), (16, "gone")}, (
        found
    )
    assert found[(4, "clear_device_cache")]["repaired_by"] == "accelerate-clear-device-cache"
    assert found[(5, "FP8BackendType")]["repaired_by"] == "accelerate-utils-fp8backendtype"
    assert (
        found[(16, "gone")]["repaired_by"] is None
        and found[(16, "gone")]["module"] == "accelerate.utils.memory"
    )
    assert found[(9, "Optional")]["guarded"] == "try"
    first = found[(4, "clear_device_cache")]
    assert (first["dist"], first["file"], first["target"]) == (
        "mylib",
        "mylib/__init__.py",
        "accelerate 0.31.0",
    )
    assert result["repaired"] == 2


def test_scan_cli_on_the_test_venv_runs_and_imports_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    env["PYTHONPATH"] = str(SRC)
    proc = subprocess.run([sys.executable, "-m", "odin_compat", "scan", "--json"], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["files_read"] > 0 and "transformers" in result["targets"]
    for f in result["findings"]:
        assert f["file"].endswith(".py") and f["line"] > 0 and f["code"]
