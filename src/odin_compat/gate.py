"""`odin-compat doctor --check`: a pre-flight gate for CI.

It fails (exit 1) when the environment has a known crash that odin does not repair, or a crash
that odin repairs only where it is active and nothing here activates it. odin is active where
it is needed when start-up activation is installed (`odin-compat install`), when the process
was started by `odin-compat run`, or when every entry script given with `--entry` imports
`odin_compat` before anything else.
"""

from __future__ import annotations

import ast
from pathlib import Path

_HOW = (
    "put `import odin_compat` first in the entry script (and say so with `--entry SCRIPT`), "
    "run `odin-compat install`, or start the job with `odin-compat run -- CMD`"
)


def imports_odin_first(script: str | Path) -> tuple[bool, str]:
    """Is `import odin_compat` the script's first import? With a reason."""
    path = Path(script)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        return False, f"{path}: cannot read it ({type(exc).__name__}: {exc})"
    for node in tree.body:
        if isinstance(node, ast.Import):
            first = node.names[0].name
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            first = node.module or ""
        else:
            continue
        if first.partition(".")[0] == "odin_compat":
            return True, f"{path}:{node.lineno} imports odin_compat first"
        return False, f"{path}:{node.lineno} imports {first} before odin_compat"
    return False, f"{path}: never imports odin_compat"


def check(report: dict, entries: tuple[str, ...] | list[str] = ()) -> dict:
    """The verdict on a `doctor.collect()` report: {"ok", "problems", "notes"}."""
    problems: list[str] = []
    notes: list[str] = []
    bad = report.get("known_bad", [])
    for item in bad:
        if not item.get("repaired", True):
            avoid = " or ".join(f"`{a}`" for a in item.get("avoid", ()))
            problems.append(f"crash odin does not repair: {item['error']} ({' + '.join(item['found'])}); "
                            f"avoid it with {avoid}")  # fmt: skip
    needs_odin = [item for item in bad if item.get("repaired", True)]
    if needs_odin:
        crashes = "; ".join(item["error"].split(" (")[0] for item in needs_odin)
        if report.get("disabled"):
            problems.append(f"ODIN_COMPAT_DISABLE is set, so odin cannot repair: {crashes}")
        elif report.get("startup_installed"):
            notes.append(
                "start-up activation is installed: every Python process of this environment is repaired"
            )
        elif report.get("run_active"):
            notes.append("started by `odin-compat run`: every Python process it starts is repaired")
        elif entries:
            for entry in entries:
                ok, why = imports_odin_first(entry)
                (notes if ok else problems).append(why if ok else f"{why}; odin is needed for: {crashes}")
        else:
            problems.append(f"odin is needed here but nothing activates it ({crashes}): {_HOW}")
    return {"ok": not problems, "problems": problems, "notes": notes}


def render(result: dict) -> str:
    lines = ["### Check", ""]
    lines += [f"- FAIL: {p}" for p in result["problems"]]
    lines += [f"- ok: {n}" for n in result["notes"]]
    if result["ok"]:
        lines.append(
            "- PASS: no known crash that odin does not repair, and odin is active where it is needed"
        )
    return "\n".join(lines) + "\n"
