"""Subprocess helpers for the core tests, on top of `matrix.target` (the cached release folders).

Scripts run in a fresh interpreter with the release folders first on PYTHONPATH, so the
release under test shadows whatever the venv has; results come back as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from matrix import ROOT, target

release = target  # one cached folder per set of releases (see matrix.py)


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
