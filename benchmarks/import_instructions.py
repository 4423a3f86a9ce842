"""Instructions that `import odin_compat` adds to the training stack's imports (CPU, deterministic).

Timings on a shared machine scatter by several percent from run to run; instruction counts do not.
Runs the stack's imports under valgrind's cachegrind (no cache simulation) three times: plain, with
`import odin_compat` first, and the same with the healer's exec hook in Python instead of C (as where
its compiled module was not built). PYTHONHASHSEED=0 makes the runs hash alike, one BLAS thread keeps
idle threads' spinning out of the count, and glibc's memcpy avoids `rep movsb` (see below). Writes the
counts and their ratios. Needs valgrind; takes about ten minutes.

    python benchmarks/import_instructions.py --out benchmarks/results/import_instructions.json
    python benchmarks/import_instructions.py --breakdown --out benchmarks/results/import_instructions-breakdown.json
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

# --breakdown: where odin's instructions go. An audit hook that does nothing (CPython then builds every
# event's arguments), and odin with no exec hook at all (its finder and records alone).
BREAKDOWN = {
    "empty_hook": "from odin_compat._audit import install; install(lambda e, a: None, None, {}); " + STACK,
    "odin_no_hook": "import sys, types; fake = types.ModuleType('odin_compat._audit'); "
    "fake.install = lambda *a: None; sys.modules['odin_compat._audit'] = fake; import odin_compat; " + STACK,
}
CODE = {
    "plain": STACK,
    "odin": "import odin_compat; " + STACK,
    # The healer's exec hook written in Python, as where the compiled one was not built.
    "odin_python_hook": "import sys; sys.modules['odin_compat._audit'] = None; import odin_compat; " + STACK,
}


def instructions(code: str, **extra: str) -> int:
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
        **extra,
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
    parser.add_argument("--breakdown", action="store_true", help="count only the breakdown's variants")
    args = parser.parse_args()
    code = {"plain": STACK, **BREAKDOWN} if args.breakdown else CODE
    # "empty_hook" must not activate odin: it only borrows the compiled module.
    env = {"empty_hook": {"ODIN_COMPAT_DISABLE": "1"}}
    counts = {name: instructions(c, **env.get(name, {})) for name, c in code.items()}
    result = {
        **about(),
        "code": code,
        "instructions": counts,
        **{f"{name}_added": counts[name] - counts["plain"] for name in counts if name != "plain"},
        **{f"ratio_{name}_vs_plain": counts[name] / counts["plain"] for name in counts if name != "plain"},
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
