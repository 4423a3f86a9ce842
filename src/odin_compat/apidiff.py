"""Optional API-diff data shipped in the wheel (`odin_compat/data/api_diff.json`).

Each entry says which releases of a distribution lack a name that releases of another
distribution import; `doctor --lock` turns the entries that a lock falls into into crashes.
The file is optional: without it the records and the known-bad table still decide.

Accepted shape (unknown keys are ignored, malformed entries skipped)::

    {"symbols": [{
        "module": "accelerate.utils", "name": "FP8BackendType",
        "dist": "accelerate", "missing": "<0.34.0",
        "used_by": [{"dist": "unsloth", "versions": "<=2025.6.2", "where": "unsloth/models/_utils.py:97"}],
        "error": "ImportError: cannot import name ...",   (optional)
        "record": "accelerate-fp8backendtype",             (optional: the record that repairs it)
        "avoid": ["accelerate>=0.34.0"]                     (optional)
    }]}

A top-level list of such entries is accepted too.
"""

from __future__ import annotations

import json
from pathlib import Path

PATH = Path(__file__).resolve().parent / "data" / "api_diff.json"


def entries(path: Path | None = None) -> list[dict]:
    """The well-formed entries of the data file; [] when it is absent or unreadable."""
    path = path or PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("symbols", data.get("entries", [])) if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    keep = []
    for item in items:
        if (
            isinstance(item, dict)
            and all(isinstance(item.get(k), str) for k in ("module", "name", "dist", "missing"))
            and isinstance(item.get("used_by"), list)
        ):
            keep.append(item)
    return keep


def hits(versions: dict[str, str], items: list[dict]) -> list[dict]:
    """The entries whose missing side and one of whose importers are both pinned in `versions`."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name

    def pinned(dist: str, spec: str) -> str | None:
        version = versions.get(canonicalize_name(dist))
        if version is None:
            return None
        try:
            return version if SpecifierSet(spec or "").contains(version, prereleases=True) else None
        except InvalidSpecifier:
            return None

    found = []
    for item in items:
        lacking = pinned(item["dist"], item["missing"])
        if lacking is None:
            continue
        for user in item["used_by"]:
            if not isinstance(user, dict) or not isinstance(user.get("dist"), str):
                continue
            used = pinned(user["dist"], str(user.get("versions", "")))
            if used is not None:
                found.append({**item, "lacking": f"{item['dist']} {lacking}", "user": f"{user['dist']} {used}",
                              "where": user.get("where", "")})  # fmt: skip
                break
    return found
