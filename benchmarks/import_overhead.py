"""Import overhead of odin_compat on the full training stack (CPU).

Paired, interleaved runs (the order inside each pair alternates) of

    import transformers, trl, accelerate, peft, transformers.trainer

in fresh interpreters: without odin, with `import odin_compat` first, and with
the start-up file installed (`odin-compat install`). Also times `import
odin_compat` alone and one heal sweep in the loaded stack. Prints medians and
ratios and writes a JSON result file.

    python benchmarks/import_overhead.py --pairs 15 --out benchmarks/results/import_overhead.json
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

STACK = "import transformers, trl, accelerate, peft, transformers.trainer"
# CPU time of the importing process (process_time) is what odin can add; it is also far less
# disturbed by other load on a shared machine than wall time.
TIMED = "import time; t = time.process_time(); {pre}" + STACK + "; print(time.process_time() - t)"
ALONE = "import time; t = time.process_time(); import odin_compat; print(time.process_time() - t)"
SWEEP = (
    "import odin_compat, time; " + STACK + "\n"
    "odin_compat.heal(); ts = []\n"
    "for _ in range(20):\n    t = time.process_time(); odin_compat.heal(); ts.append(time.process_time() - t)\n"
    "import statistics; print(statistics.median(ts))"
)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment, without the switches that would turn odin off or skip the .pyc cache."""
    full = {
        k: v for k, v in os.environ.items() if k not in ("ODIN_COMPAT_DISABLE", "PYTHONDONTWRITEBYTECODE")
    }
    return {**full, **extra}


def about() -> dict:
    """Where, when and how a result was measured, for its results file."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "versions": {
            m: __import__("importlib.metadata").metadata.version(m)
            for m in ("torch", "transformers", "trl", "accelerate", "peft")
        },
    }


def timed(code: str, env: dict | None = None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(**(env or {})), check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--out", default="benchmarks/results/import_overhead.json")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up-file variant")
    args = parser.parse_args()

    from odin_compat import _startup

    variants = {"plain": ("", {}), "odin": ("import odin_compat; ", {})}
    timed(TIMED.format(pre="import odin_compat; "))  # warm the disk cache and write .pyc files
    runs: dict[str, list[float]] = {k: [] for k in [*variants, "startup"]}
    for i in range(args.pairs):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            pre, env = variants[name]
            runs[name].append(timed(TIMED.format(pre=pre), env))
    if not args.no_startup:
        installed_before = _startup.installed()
        _startup.install()
        try:
            for i in range(args.pairs):  # interleave with plain runs, which then need the switch off
                pair = [("startup", {}), ("plain_off", {"ODIN_COMPAT_DISABLE": "1"})]
                for name, env in pair if i % 2 == 0 else reversed(pair):
                    runs.setdefault(name, []).append(timed(TIMED.format(pre=""), env))
        finally:
            if not installed_before:
                _startup.uninstall()
    alone = [timed(ALONE) for _ in range(args.pairs)]
    sweep = timed(SWEEP)

    med = {k: statistics.median(v) for k, v in runs.items() if v}
    # Each pair ran back to back: its ratio cancels the slow drifts of a shared machine.
    pairs = [o / p for o, p in zip(runs["odin"], runs["plain"], strict=True)]
    quartiles = statistics.quantiles(pairs, n=4)
    result = {
        **about(),
        "median_cpu_s": med,
        "ratio_odin_vs_plain": med["odin"] / med["plain"],
        "paired_ratio": {"median": quartiles[1], "q1": quartiles[0], "q3": quartiles[2], "pairs": len(pairs)},
        "ratio_startup_vs_plain": med["startup"] / med["plain_off"] if "startup" in med else None,
        "import_odin_compat_alone_ms": statistics.median(alone) * 1e3,
        "heal_sweep_ms": sweep * 1e3,
        "runs": runs,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
