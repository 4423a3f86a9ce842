"""Compare `odin-compat scan` with what really happens, in the environment of this interpreter.

    python scripts/scan_validate.py trl peft accelerate

- precision: for each unguarded finding, import the target module for real and check that the
  name is absent (`hasattr`, which also asks lazy modules);
- recall: import every module of the given importer packages, one by one, and collect each
  `ImportError: cannot import name 'Y' from 'X'` whose X is in the stack; a missed one is an
  observed crash that the scan did not list.

Prints one JSON object. It imports the stack (it is a validation script, not the product); run
it with ODIN_COMPAT_DISABLE=1, so that odin's repairs do not hide what is missing.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
import warnings

from odin_compat import scan

_ERROR = re.compile(r"cannot import name '(\w+)' from '([\w.]+)'")


def main(importers: list[str]) -> dict:
    result = scan.scan()
    predicted = [
        f for f in result["findings"] if f["dist"].replace("-", "_") in importers or f["dist"] in importers
    ]
    confirmed = []
    for f in predicted:
        try:
            module = importlib.import_module(f["module"])
            absent = not hasattr(module, f["name"])
        except Exception:
            absent = False  # the target module itself does not import: not a confirmation
        confirmed.append(absent)
    observed: dict[tuple[str, str], str] = {}
    warnings.simplefilter("ignore")
    broken: dict[str, str] = {}
    for top in importers:
        try:
            package = importlib.import_module(top)
        except Exception as exc:  # the importer itself does not import: no module to walk
            broken[top] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{top}.", onerror=lambda name: None):
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                m = _ERROR.search(str(exc))
                source = m.group(2).partition(".")[0] if m else ""
                if source in scan.TARGETS and source != top:  # the scan checks imports across packages
                    observed.setdefault((m.group(1), m.group(2).partition(".")[0]), info.name)
            except Exception:  # noqa: S112  (optional dependencies, GPU-only code)
                continue
    names = {(f["name"], f["module"].partition(".")[0]) for f in predicted}
    missed = {k: v for k, v in observed.items() if k not in names}
    return {
        "scan_seconds": result["seconds"],
        "predicted": len(predicted),
        "predicted_names": sorted({f"{n} ({t})" for n, t in names}),
        "confirmed": sum(confirmed),
        "precision": round(sum(confirmed) / len(predicted), 3) if predicted else None,
        "observed_names": sorted(f"{n} ({t}) in {mod}" for (n, t), mod in observed.items()),
        "missed": sorted(f"{n} ({t}) in {mod}" for (n, t), mod in missed.items()),
        "recall": round(1 - len(missed) / len(observed), 3) if observed else None,
        "importers_that_do_not_import": broken,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
