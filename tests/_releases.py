"""Real released packages for tests: installed once into `.matrix/<name>-<version>` folders.

A folder holds only the named releases (``--no-deps``); everything else comes
from the venv running the tests. Scripts run in a subprocess with the folder
first on PYTHONPATH, so the release under test shadows whatever the venv has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / ".matrix"


def release(*requirements: str) -> Path:
    """A folder with exactly these requirements installed (cached across runs)."""
    name = "+".join(r.replace("==", "-") for r in requirements)
    folder = MATRIX / name
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
             "--disable-pip-version-check", "--upgrade", "--target", str(folder), *requirements],
            check=True,
        )  # fmt: skip
        (folder / ".complete").touch()
    return folder


def run_python(
    code: str, *folders: Path, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with `folders` and odin's src first on the path."""
    path = [str(f) for f in folders] + [str(ROOT / "src")]
    full_env = {k: v for k, v in os.environ.items() if k != "ODIN_COMPAT_DISABLE"}
    full_env.update(PYTHONPATH=os.pathsep.join(path), **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )


def run_json(code: str, *folders: Path, env: dict | None = None) -> object:
    """Run `code`, which prints one JSON object on its last line; fail loudly with stderr otherwise."""
    proc = run_python(code, *folders, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])
