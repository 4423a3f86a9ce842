"""Instructions that `import odin_compat` adds to the training stack's imports (CPU, deterministic).

Timings on a shared machine scatter by several percent from run to run; instruction counts do not.
Runs the stack's imports under valgrind's cachegrind (no cache simulation) three times: plain, with
`import odin_compat` first, and the same with the healer's exec hook in Python instead of C (as where
its compiled module was not built). PYTHONHASHSEED=0 makes the runs hash alike, one BLAS thread keeps
idle threads' spinning out of the count, and glibc's memcpy avoids `rep movsb` (see below). Writes the
counts and their ratios. Needs valgrind; takes about ten minutes.

    python benchmarks/import_instructions.py --out benchmarks/results/import_instructions.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from import_overhead import STACK, about, clean_env

CODE = {
    "plain": STACK,
    "odin": "import odin_compat; " + STACK,
    # The healer's exec hook written in Python, as where the compiled one was not built.
    "odin_python_hook": "import sys; sys.modules['odin_compat._audit'] = None; import odin_compat; " + STACK,
}


def instructions(code: str) -> int:
    """The instructions (valgrind's `I refs`) of a fresh interpreter that runs `code`."""
    # valgrind counts each byte that `rep movsb` copies as one instruction, and glibc's memcpy uses it
    # for copies of a few KB to a few MB: a copy that the CPU does in a few cycles per KB would count
    # as ~1,000 instructions per KB (CPython copies each .pyc's bytes into an audit event once any
    # audit hook is installed: ~95 M "instructions"). Here memcpy uses its vector loop instead.
    env = clean_env(
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        GLIBC_TUNABLES="glibc.cpu.x86_rep_movsb_threshold=1000000000000",
    )
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={tmp}/out"]
        proc = subprocess.run([*cmd, sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"valgrind failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    found = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    counts = {name: instructions(code) for name, code in CODE.items()}
    result = {
        **about(),
        "code": CODE,
        "instructions": counts,
        "ratio_odin_vs_plain": counts["odin"] / counts["plain"],
        "odin_added": counts["odin"] - counts["plain"],
        "ratio_odin_python_hook_vs_plain": counts["odin_python_hook"] / counts["plain"],
        "odin_python_hook_added": counts["odin_python_hook"] - counts["plain"],
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
