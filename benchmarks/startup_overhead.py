"""Interpreter start-up cost of `odin-compat install` (goal: at most 5 ms).

Two throwaway venvs that differ only in the start-up file: both see odin's source through a
``.pth`` path line; one also has ``odin_compat.pth`` (and the PEP 829 ``.start`` file) written by
``odin_compat._startup.install``. Paired, interleaved runs (the order inside each pair alternates)
of ``python -c pass`` in fresh interpreters, timed as whole processes (wall clock) and by
``-X importtime``'s own figure for ``odin_compat``. Prints medians and writes a JSON result file.

    python benchmarks/startup_overhead.py --pairs 40 --out benchmarks/results/startup_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def make_venv(root: Path, startup: bool) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Named like pip's editable install, so that it sorts (and runs) before odin_compat.pth.
    (Path(purelib) / "__editable__.odin_src.pth").write_text(f"{SRC}\n")
    if startup:
        sys.path.insert(0, str(SRC))
        from odin_compat import _startup

        _startup.install(Path(purelib))
    return python


def wall(python: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([python, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - t


def importtime_us(python: Path, env: dict) -> int:
    """-X importtime's cumulative microseconds for odin_compat (0 when it was not imported)."""
    err = subprocess.run(
        [python, "-X", "importtime", "-c", "pass"], env=env, capture_output=True, text=True, check=True
    ).stderr
    hits = [int(m.group(1)) for m in re.finditer(r"\|\s*(\d+)\s*\|\s*odin_compat$", err, re.M)]
    return max(hits, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--out", default=None)
    opts = parser.parse_args()
    # .pyc files as users get them (the first runs below write them).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "ODIN_COMPAT_DISABLE")}
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_venv(Path(tmp) / "plain", startup=False)
        odin = make_venv(Path(tmp) / "odin", startup=True)
        check = "import sys; print('odin_compat' in sys.modules)"
        active = subprocess.run([odin, "-c", check], env=env, capture_output=True, text=True).stdout.strip()
        inactive = subprocess.run(
            [plain, "-c", check], env=env, capture_output=True, text=True
        ).stdout.strip()
        assert (active, inactive) == ("True", "False"), (active, inactive)
        for _ in range(3):  # warm-up: page cache and .pyc files
            wall(plain, env), wall(odin, env)
        base, with_odin = [], []
        for i in range(opts.pairs):
            if i % 2:
                with_odin.append(wall(odin, env))
                base.append(wall(plain, env))
            else:
                base.append(wall(plain, env))
                with_odin.append(wall(odin, env))
        own = [importtime_us(odin, env) for _ in range(15)]
    diffs = [b - a for a, b in zip(base, with_odin, strict=True)]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "pairs": opts.pairs,
        "median_startup_plain_ms": round(statistics.median(base) * 1e3, 2),
        "median_startup_with_startup_file_ms": round(statistics.median(with_odin) * 1e3, 2),
        "median_paired_difference_ms": round(statistics.median(diffs) * 1e3, 2),
        "importtime_odin_compat_median_ms": round(statistics.median(own) / 1e3, 2),
        "goal_ms": 5.0,
    }
    print(json.dumps(result, indent=1))
    if opts.out:
        Path(opts.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
