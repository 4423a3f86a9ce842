"""Start-up activation: `odin-compat install` / `uninstall`.

Writes two files into the environment's site-packages so that every
interpreter of that environment (subprocesses, dataloader workers, torchrun
and accelerate ranks) activates odin_compat before user code runs:

- `odin_compat.pth`: an import line, read by Python <= 3.17 (PEP 829 phases them out);
- `odin_compat.start`: a PEP 829 entry point, read by Python >= 3.15; its presence
  makes those versions skip the matching .pth's import line, so activation runs once.

Activation itself is idempotent, so a start-up file read twice is harmless. Both
respect ODIN_COMPAT_DISABLE=1. `python -S` reads neither file.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from odin_compat._env import TRUE_VALUES

NAME = "odin_compat"
# One line: .pth import lines are exec'd. A broken odin must never break start-up, and one removed
# by `pip uninstall` without `odin-compat uninstall` must stay silent (its file is left behind).
PTH_LINE = (
    "import os, sys; exec('try:\\n import odin_compat\\nexcept Exception as e:\\n"
    ' if getattr(e, "name", None) != "odin_compat":\\n'
    '  sys.stderr.write("odin_compat: start-up activation skipped: %r\\\\n" % (e,))\')'
    f" if os.environ.get('ODIN_COMPAT_DISABLE', '').strip().lower() not in {TRUE_VALUES!r} else None\n"
)
START_LINE = "odin_compat.startup:activate\n"


def activate() -> None:
    """PEP 829 entry point. Importing this module already imported (and so activated) odin_compat."""


def site_dir() -> Path:
    """This environment's site-packages, where the start-up files go."""
    return Path(sysconfig.get_paths()["purelib"])


def files(where: Path | None = None) -> tuple[Path, Path]:
    where = where or site_dir()
    return where / f"{NAME}.pth", where / f"{NAME}.start"


def install(where: Path | None = None) -> list[Path]:
    """Write (or rewrite) both start-up files; returns their paths. Idempotent."""
    pth, start = files(where)
    pth.write_text(PTH_LINE, encoding="utf-8")
    start.write_text(START_LINE, encoding="utf-8")
    return [pth, start]


def uninstall(where: Path | None = None) -> list[Path]:
    """Remove the start-up files; returns those removed. Idempotent."""
    removed = []
    for path in files(where):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def installed(where: Path | None = None) -> bool:
    """True when both start-up files are in place."""
    return all(p.exists() for p in files(where))
