"""`odin-compat doctor --lock FILE`: what a lock will hit, before anything is installed.

From the pins alone (no import, no network) and odin's shipped data: the known-bad table
(doctor.KNOWN_BAD), the records' `affects` rules and, where the wheel ships it, the API-diff
data (apidiff.py). Each crash is marked repaired by odin or not; those odin cannot repair come
with the pins that avoid them.
"""

from __future__ import annotations

import json

from odin_compat import apidiff, doctor, locks

_ACTIVE = "needs odin active: `import odin_compat` first, `odin-compat install`, or `odin-compat run -- CMD`"


def _variants(lock: locks.Lock) -> list[dict[str, str]]:
    """One {name: version} per resolution (uv may pin a name differently per platform)."""
    depth = max(len(v) for v in lock.pins.values())
    return [{n: vs[min(i, len(vs) - 1)] for n, vs in lock.pins.items()} for i in range(depth)]


def forecast(lock: locks.Lock) -> dict:
    """The JSON-ready forecast for one lock."""
    from odin_compat._registry import REGISTRY

    records = REGISTRY.all()
    by_id = {r.id: r for r in records}
    by_target = {(r.module, r.name): r for r in records}
    crashes: dict[str, dict] = {}
    repairs: dict[str, dict] = {}
    for versions in _variants(lock):
        for item in doctor.known_bad(versions, installed_fallback=False):
            crashes.setdefault(item["error"], {**item, "source": "known-bad table"})
        for item in apidiff.hits(versions, apidiff.entries()):
            record = by_id.get(item.get("record", "")) or by_target.get((item["module"], item["name"]))
            error = (
                item.get("error")
                or f"ImportError: cannot import name '{item['name']}' from '{item['module']}'"
            )
            crashes.setdefault(error, {
                "when": [item["lacking"], item["user"]], "found": [item["lacking"], item["user"]],
                "error": error, "repaired": record is not None,
                "odin": f"healed: record {record.id}" if record else "not repaired by odin",
                "avoid": list(item.get("avoid") or [f"{item['dist']}{_flip(item['missing'])}"]),
                "source": "API diff" + (f" ({item['where']})" if item.get("where") else ""),
            })  # fmt: skip
        for record in records:
            rule = doctor.affects(record)
            if rule and record.id not in repairs:
                ok, why = doctor._matches(rule, versions, installed_fallback=False)
                if ok:
                    repairs[record.id] = {"id": record.id, "why": why, "fixes": record.fixes,
                                          "target": f"{record.module}.{record.name}"}  # fmt: skip
    found = list(crashes.values())
    stack = {d: lock.version(d) for d in doctor.STACK if lock.version(d)}
    return {
        "lock": str(lock.path),
        "format": lock.kind,
        "packages": len(lock.pins),
        "stack": stack,
        "unpinned": lock.unpinned,
        "crashes": found,
        "repaired": sum(1 for c in found if c["repaired"]),
        "not_repaired": sum(1 for c in found if not c["repaired"]),
        "repairs": sorted(repairs.values(), key=lambda r: r["id"]),
    }


def _flip(spec: str) -> str:
    """The complement of a one-sided range ("<0.34.0" -> ">=0.34.0"); else a hint."""
    flips = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
    for op in ("<=", ">=", "<", ">"):
        if spec.startswith(op) and "," not in spec:
            return flips[op] + spec[len(op) :]
    return f" outside {spec}"


def render(result: dict) -> str:
    out = [f"## odin-compat doctor --lock {result['lock']}", ""]
    stack = ", ".join(f"{d} {v}" for d, v in result["stack"].items()) or "none of the HF stack"
    out.append(f"- {result['format']} lock, {result['packages']} pinned packages; stack: {stack}")
    if result["unpinned"]:
        out.append(f"- not pinned (not judged): {', '.join(result['unpinned'])}")
    out += ["", f"### Crashes this lock will hit ({len(result['crashes'])})", ""]
    for c in result["crashes"]:
        out.append(f"- {' + '.join(c['found'])}")
        out.append(f"  - crashes with: `{c['error']}`")
        if c["repaired"]:
            out.append(f"  - odin repairs it ({c['odin']}); {_ACTIVE}")
        else:
            out.append("  - odin cannot repair it; pins that avoid it (any one): "
                       + ", ".join(f"`{a}`" for a in c["avoid"]))  # fmt: skip
    if not result["crashes"]:
        out.append("- none known")
    out += ["", f"### Repairs odin applies on this lock ({len(result['repairs'])})", ""]
    out.append("Code written for other releases crashes here without them:")
    out.append("")
    out += [f"- **{r['id']}** ({r['why']}): `{r['fixes']}`" for r in result["repairs"]] or ["- none"]
    out += ["", "### Summary", ""]
    out.append(f"- {len(result['crashes'])} known crashes: {result['repaired']} repaired by odin, "
               f"{result['not_repaired']} not repairable (change the pins)")  # fmt: skip
    return "\n".join(out) + "\n"


def main(path: str, as_json: bool = False, check: bool = False) -> int:
    """Print the forecast; exit 2 on an unreadable lock, 1 with `check` when a crash is not repairable."""
    try:
        result = forecast(locks.read(path))
    except (locks.LockError, OSError) as exc:
        import sys

        print(f"odin-compat doctor --lock: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if as_json else render(result))
    return 1 if check and result["not_repaired"] else 0
