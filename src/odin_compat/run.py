"""`odin-compat run -- CMD ...`: run a command with odin active in every Python process it starts.

Nothing is written into site-packages: the command gets the folder of a `sitecustomize.py`
that ships with odin (`_bootstrap/`) first on PYTHONPATH, so each interpreter that inherits the
environment (subprocesses, dataloader workers, torchrun / accelerate ranks) activates odin at
start-up. An existing sitecustomize still runs after it. `python -E` / `-I` ignore PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

MARKER = "ODIN_COMPAT_RUN"  # set in the command's environment: the bootstrap folder


def bootstrap_dir() -> Path:
    return Path(__file__).resolve().parent / "_bootstrap"


def environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with odin's bootstrap first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    boot = str(bootstrap_dir())
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != boot]
    env["PYTHONPATH"] = os.pathsep.join([boot, *rest])
    env[MARKER] = boot
    return env


def active_here() -> bool:
    """True in a process started under `odin-compat run` that honoured its PYTHONPATH."""
    boot = os.environ.get(MARKER)
    return bool(boot) and boot in sys.path


def main(argv: list[str]) -> int:
    """Replace this process with `argv` (no return on success)."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: odin-compat run -- CMD [ARGS...]\n")
        return 2
    program = shutil.which(argv[0]) or argv[0]
    env = environ()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(program, argv, env)
    except OSError as exc:
        sys.stderr.write(f"odin-compat run: cannot run {argv[0]!r}: {exc}\n")
        return 127
    return 0  # not reached
