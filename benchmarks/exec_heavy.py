"""Exec-heavy code with and without odin_compat (CPU).

A program that execs many small functions with distinct names (a code generator, a templating
engine, a test suite that builds fixtures from strings) pays odin's exec audit hook on every
exec. Paired, interleaved runs in fresh interpreters, each with the training stack imported
(so the healer has origin libraries to compare against):

    without odin  |  `import odin_compat` first

and the ratio of the medians of the CPU time of the exec loop alone. Goal: at most 2x.

    python benchmarks/exec_heavy.py --pairs 10 --execs 2000 --out benchmarks/results/exec_heavy.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone

PROGRAM = """
{pre}import gc, time, transformers.trainer, accelerate, peft
gc.collect()  # the stack's import leaves a full collection pending; neither arm should pay it in the loop
t = time.process_time()
for i in range({n}):
    ns = {ns}
    exec(f"def f{{i}}(x):\\n    return x + missing_{{i}} + len(str(x))\\n", ns)
    try:
        ns[f"f{{i}}"](1)
    except NameError:
        pass
print(time.process_time() - t)
"""


def timed(odin: bool, n: int, namespace: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "ODIN_COMPAT_DISABLE"}
    code = PROGRAM.format(
        pre="import odin_compat\n" if odin else "", n=n, ns="globals()" if namespace == "globals" else "{}"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--execs", type=int, default=2000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = [measure(args, namespace) for namespace in ("globals", "fresh")]
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


def measure(args: argparse.Namespace, namespace: str) -> dict:
    plain, odin = [], []
    for i in range(args.pairs):
        order = (False, True) if i % 2 == 0 else (True, False)  # alternate who goes first
        for with_odin in order:
            (odin if with_odin else plain).append(timed(with_odin, args.execs, namespace))
    ratio = statistics.median(odin) / statistics.median(plain)
    where = "exec(src, globals())" if namespace == "globals" else "exec(src, {})"
    return {
        "what": f"CPU time of {args.execs} functions with distinct names, each `{where}`, stack imported",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "pairs": args.pairs,
        "plain_s": {"median": statistics.median(plain), "min": min(plain), "max": max(plain)},
        "odin_s": {"median": statistics.median(odin), "min": min(odin), "max": max(odin)},
        "ratio_median": ratio,
        "goal": "ratio <= 2.0",
        "met": ratio <= 2.0,
    }


if __name__ == "__main__":
    main()
