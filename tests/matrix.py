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


# transformers release sets that import with torch 2.13 / numpy 2 / Python 3.11, each with the
# tokenizers and huggingface_hub it was released against.
HUB_0 = "huggingface_hub==0.30.2"
T440 = ("transformers==4.40.2", "tokenizers==0.19.1", HUB_0)
T445 = ("transformers==4.45.2", "tokenizers==0.20.3", HUB_0)
T449 = ("transformers==4.49.0", "tokenizers==0.21.1", HUB_0)
T450 = ("transformers==4.50.3", "tokenizers==0.21.1", HUB_0)
T451 = ("transformers==4.51.3", "tokenizers==0.21.1", HUB_0)
T457 = ("transformers==4.57.1", "tokenizers==0.22.1", "huggingface_hub==0.36.0")
# transformers 5 uses the venv's huggingface_hub (1.x/2.x) and needs typer for its CLI module.
T5 = ("transformers==5.24.0", "tokenizers==0.23.3", "typer==0.29.2", "rich==15.0.0", "shellingham==1.5.4",
      "markdown-it-py==4.3.0", "mdurl==0.1.2")  # fmt: skip

# datasets 3.6 and its dependencies (trl needs it), pinned as one resolution found them.
DATASETS = ("datasets==3.6.0", "dill==0.3.8", "multiprocess==0.70.16", "fsspec==2025.3.0", "xxhash==4.1.0",
            "pyarrow==26.0.1", "pandas==3.1.1", "python_dateutil==4.0.0", "tzdata==2026.6", "aiohttp==3.14.5",
            "aiohappyeyeballs==2.7.1", "aiosignal==1.4.0", "attrs==26.1.0", "frozenlist==1.8.0",
            "multidict==7.2.1", "propcache==0.5.4", "yarl==1.25.1", "rich==15.0.0", "markdown-it-py==4.3.0",
            "mdurl==0.1.2")  # fmt: skip


def common() -> Path:
    return target(*COMMON)


def target(*specs: str) -> Path:
    """The cached folder holding exactly `specs` (pip requirement strings), installed if needed."""
    name = re.sub(r"[^A-Za-z0-9.+_-]", "", "+".join(s.replace("==", "-") for s in specs))
    if len(name) > 120:  # file-name limit: first spec plus a digest of the whole set
        import hashlib

        name = name.partition("+")[0] + "+" + hashlib.sha1(name.encode()).hexdigest()[:12]
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
