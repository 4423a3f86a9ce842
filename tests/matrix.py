"""Run snippets against real released packages, with and without odin_compat.

Each release set is installed once with `pip install --no-deps --target` into a cached folder
under `.matrix/` (or $ODIN_MATRIX_DIR) and put first on PYTHONPATH of a subprocess; the
packages common to everything (torch, numpy, packaging, ...) come from the running venv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MATRIX = Path(os.environ.get("ODIN_MATRIX_DIR", ROOT / ".matrix"))

# Pure-Python dependencies of transformers & co. that the test venv need not have.
COMMON = (
    "regex==2026.11.19",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "charset_normalizer==3.5.3",
    "certifi==2026.10.19.post1",
)


def common() -> Path:
    return target(*COMMON)


def target(*specs: str) -> Path:
    """The cached folder holding exactly `specs` (pip requirement strings), installed if needed."""
    name = re.sub(r"[^A-Za-z0-9.+_-]", "", "+".join(s.replace("==", "-") for s in specs))
    folder = MATRIX / name
    done = folder / ".odin-complete"
    if not done.exists():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
               "--target", str(folder), *specs]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot install {specs}: {proc.stderr[-500:]}")
        done.write_text("\n".join(specs) + "\n")
    return folder


def run(code: str, *folders: Path, odin: bool) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with `folders` first on sys.path (then src/)."""
    code = textwrap.dedent(code)
    if odin:
        code = "import odin_compat\n" + code
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "ODIN_"))}
        env.update(
            PYTHONPATH=os.pathsep.join([*map(str, folders), str(SRC)]),
            PYTHONDONTWRITEBYTECODE="1",
            HF_HOME=home,
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            TRANSFORMERS_NO_ADVISORY_WARNINGS="1",
            CUDA_VISIBLE_DEVICES="",
        )
        if not odin:
            env["ODIN_COMPAT_DISABLE"] = "1"  # a startup hook, if installed, must not help
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=home, timeout=600
        )


def breaks(code: str, *folders: Path, error: str) -> None:
    """Without odin, `code` dies with the exact `error` text (the real crash)."""
    proc = run(code, *folders, odin=False)
    assert proc.returncode != 0, f"expected the real crash, but it ran:\n{proc.stdout}\n{proc.stderr}"
    assert error in proc.stderr, f"expected {error!r} in:\n{proc.stderr[-3000:]}"


def works(code: str, *folders: Path) -> str:
    """With `import odin_compat` first, `code` runs to the end; returns its stdout."""
    proc = run(code, *folders, odin=True)
    assert proc.returncode == 0, f"still fails with odin:\n{proc.stderr[-3000:]}"
    return proc.stdout


def untouched(code: str, *folders: Path) -> str:
    """Working side: with odin imported, `code` (which asserts upstream identity) passes, and
    odin decided on the record and skipped it. `code` sets `RECORD` to the record id."""
    check = textwrap.dedent(code) + textwrap.dedent(
        """
        import odin_compat
        _mine = [o for o in odin_compat.report()["outcomes"] if o["id"] == RECORD]
        assert _mine and all(o["status"] == "skipped" for o in _mine), _mine
        """
    )
    return works(check, *folders)
