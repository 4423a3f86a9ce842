"""`odin-compat doctor`: an environment report, ready to paste into a bug report.

It reads installed versions from distribution metadata and decides every record from them,
without importing the libraries the records repair. Only the system section imports torch
(for CUDA and GPU facts).
"""

from __future__ import annotations

import json
import platform
import sys

from odin_compat._stack import STACK
from odin_compat._stack import version as _version

TYPE_CHECKING = False
if TYPE_CHECKING:
    from odin_compat.records import Record

_HEALER = "healed: odin's healer fills the missing globals of the rebuilt function"

# Known-bad combinations: (requirements that must all hold, what happens, what odin does about it
# (None: odin cannot repair it), requirements of which any one avoids it).
KNOWN_BAD: tuple[tuple[tuple[str, ...], str, str | None, tuple[str, ...]], ...] = (
    (
        ("unsloth>=2024.5,<=2025.6.2", "accelerate>=1.9.0"),
        "NameError: name 'FP8BackendType' is not defined (File \"<string>\", line 135, in prepare): unsloth "
        "rebuilds Accelerator.prepare from source into its own namespace",
        _HEALER,
        ("unsloth>2025.6.2", "accelerate<1.8.0"),
    ),
    (
        ("unsloth>=2024.5,<=2025.6.2", "accelerate>=1.8.0,<1.9.0"),
        "NameError: name 'is_torch_version' is not defined (File \"<string>\", line 121, in prepare) "
        "(unsloth #2775, accelerate #3641)",
        _HEALER,
        ("unsloth>2025.6.2", "accelerate<1.8.0"),
    ),
    (
        ("transformers>=4.52.0", "accelerate<1.3.0"),
        "TypeError: Accelerator.unwrap_model() got an unexpected keyword argument 'keep_torch_compile'",
        "healed: record accelerate-unwrap-model-keep-torch-compile",
        ("accelerate>=1.3.0", "transformers<4.52.0"),
    ),
    (
        ("peft>=0.15.0", "accelerate<0.32.0"),
        "ImportError: cannot import name 'clear_device_cache' from 'accelerate.utils.memory' on `import peft`",
        "healed: record accelerate-clear-device-cache",
        ("accelerate>=0.32.0", "peft<0.15.0"),
    ),
    (
        ("transformers<4.41.0", "accelerate>=1.0.0"),
        "TypeError: Accelerator.__init__() got an unexpected keyword argument 'dispatch_batches' "
        "when Trainer builds its Accelerator",
        "healed: record accelerate-dataloader-args",
        ("accelerate<1.0.0", "transformers>=4.41.0"),
    ),
    (
        ("trl<0.12.0", "transformers>=5.0.0"),
        "TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer' (old trl passes tokenizer=)",
        "healed: record transformers-trainer-tokenizer",
        ("transformers<5.0.0", "trl>=0.12.0"),
    ),
    # Crashes odin does not repair: only pins avoid them.
    (
        ("transformers>=4.51.0", "torch<2.3.0"),
        "AttributeError: module 'torch' has no attribute 'get_default_device' (transformers calls it; "
        "torch added it in 2.3, pytorch #126632, transformers #38329)",
        None,
        ("torch>=2.3.0", "transformers<4.51.0"),
    ),
    (
        ("sentence-transformers<2.3.0", "huggingface_hub>=0.26.0"),
        "ImportError: cannot import name 'cached_download' from 'huggingface_hub' on `import sentence_transformers` "
        "(removed in huggingface_hub 0.26.0, huggingface_hub #2579)",
        None,
        ("sentence-transformers>=2.3.0", "huggingface_hub<0.26.0"),
    ),
)

# Known-good pin sets, paste-ready. The first is the FP8 report's own way out.
KNOWN_GOOD: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "the FP8 report's pre-FP8 stack (unsloth rebuilt prepare() before accelerate read FP8BackendType)",
        "3.11",
        ("unsloth>=2024.11,<2024.12", "transformers>=4.45,<4.46", "accelerate>=0.34,<0.35"),
    ),
    (
        "current releases (proved by odin's matrix, docs/matrix.md)",
        "3.11",
        (
            "torch==2.13.0",
            "transformers==5.24.0",
            "accelerate==1.15.0",
            "trl==1.16.0",
            "peft==0.21.2",
            "huggingface_hub==2.4.0",
        ),
    ),  # fmt: skip
)


def _matches(
    requirement: str, versions: dict[str, str | None], installed_fallback: bool = True
) -> tuple[bool, str]:
    """Does the version in `versions` (else, unless told not to, the installed one) satisfy
    `requirement` ("pkg>=1,<2" or "pkg")? With a reason."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    req = Requirement(requirement)
    installed = versions.get(req.name)
    if installed is None:
        installed = versions.get(canonicalize_name(req.name))
    if installed is None and installed_fallback:
        installed = _version(req.name)
    if installed is None:
        return False, f"{req.name} not installed"
    ok = req.specifier.contains(installed, prereleases=True)
    spec = str(req.specifier) or "any version"
    return ok, f"{req.name} {installed} {'matches' if ok else 'is outside'} {spec}"


def affects(record: Record) -> str:
    """The requirement marking the record's breaking side ("" when it has none)."""
    return record.affects


def known_bad(versions: dict[str, str | None], installed_fallback: bool = True) -> list[dict]:
    """The known-bad combinations that `versions` (else the installed versions) fall into."""
    found = []
    for requirements, error, remedy, avoid in KNOWN_BAD:
        results = [_matches(r, versions, installed_fallback) for r in requirements]
        if all(ok for ok, _ in results):
            found.append(
                {
                    "when": list(requirements),
                    "found": [why for _, why in results],
                    "error": error,
                    "odin": remedy or "not repaired by odin",
                    "repaired": remedy is not None,
                    "avoid": list(avoid),
                }
            )
    return found


def _record_row(record: Record, versions: dict[str, str | None], outcomes: dict[str, dict]) -> dict:
    rule = affects(record)
    if rule:
        applies, reason = _matches(rule, versions)
    else:
        applies, reason = False, "no version rule"
    if applies:
        reason += "; decided at import (applies only where upstream lacks the thing)"
    row = {
        "id": record.id,
        "applies": applies,
        "reason": reason,
        "fixes": record.fixes,
        "source": record.upstream,
        "target": f"{record.module}.{record.name}",
        "kind": record.kind,
        "works": record.works,
        "breaks": record.breaks,
        "remove_when": record.remove_when,
    }
    done = outcomes.get(record.id)
    if done is not None:  # this process imported the target: the real decision
        row["in_process"] = done["status"]
        row["applies"] = done["status"] == "applied"
        row["reason"] = done["reason"]
    return row


def _system() -> dict:
    info: dict = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_build"] = torch.version.cuda
        info["cuda_available"] = torch.cuda.is_available()
        if info["cuda_available"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cudnn"] = torch.backends.cudnn.version()
        else:
            info["gpus"] = []
    except Exception as exc:  # a doctor must report, not crash
        info["torch"] = f"not importable: {type(exc).__name__}: {exc}"
    return info


def collect() -> dict:
    """The whole report as one JSON-ready dict."""
    import odin_compat
    from odin_compat import _heal
    from odin_compat._registry import REGISTRY

    versions = {dist: _version(dist) for dist in STACK}
    state = odin_compat.report()
    outcomes = {o["id"]: o for o in state["outcomes"]}
    records = [_record_row(r, versions, outcomes) for r in REGISTRY.all()]
    bad = known_bad(versions)
    return {
        "odin_compat": odin_compat.__version__,
        "active": state["active"],
        "disabled": state["disabled"],
        "exec_hook": _heal.audit_hook(),
        "startup_installed": _startup_installed(),
        "run_active": _under_run(),
        "system": _system(),
        "versions": versions,
        "records": records,
        "preloaded": state["preloaded"],
        "healed": state["healed"],
        "known_bad": bad,
        "known_good": [{"name": name, "python": py, "pins": list(pins)} for name, py, pins in KNOWN_GOOD],
    }


def _startup_installed() -> bool:
    from odin_compat import startup

    return startup.installed()


def _under_run() -> bool:
    """True in a process started by `odin-compat run` (every Python it starts activates odin)."""
    from odin_compat import run

    return run.active_here()


def render(report: dict) -> str:
    """Readable text (Markdown), for a terminal or a bug report."""
    out: list[str] = ["## odin-compat doctor", ""]
    sysinfo = report["system"]
    out.append(f"- Python {sysinfo['python']} ({sysinfo['implementation']}) on {sysinfo['os']}")
    torch = sysinfo.get("torch")
    if sysinfo.get("cuda_available"):
        gpus = ", ".join(sysinfo.get("gpus", []))
        out.append(
            f"- torch {torch}, CUDA {sysinfo.get('cuda_build')}, cuDNN {sysinfo.get('cudnn')}, GPU: {gpus}"
        )
    else:
        out.append(f"- torch {torch}, CUDA build {sysinfo.get('cuda_build')}, no GPU visible")
    out.append(f"- odin_compat {report['odin_compat']}: {'active' if report['active'] else 'inactive'}"
               + (" (ODIN_COMPAT_DISABLE set)" if report["disabled"] else ""))  # fmt: skip
    if report.get("exec_hook") == "python":
        out.append("- the healer's exec hook runs in Python: its compiled module was not built for this "
                   "interpreter (reinstall odin where a C compiler is present; imports run about half a percent faster)")  # fmt: skip
    out.append("- start-up activation (`odin-compat install`): "
               + ("installed: every interpreter of this environment activates odin" if report["startup_installed"]
                  else "not installed: only scripts that `import odin_compat` are repaired"))  # fmt: skip
    if report.get("run_active"):
        out.append("- started by `odin-compat run`: every Python process it starts activates odin")
    out += ["", "### Installed versions", "", "```"]
    width = max(len(d) for d in report["versions"])
    out += [f"{dist:<{width}}  {ver or '-'}" for dist, ver in report["versions"].items()]
    out += ["```", ""]

    out += ["### Known-bad combinations found", ""]
    if report["known_bad"]:
        for item in report["known_bad"]:
            out.append(f"- {' + '.join(item['found'])}")
            out.append(f"  - crashes with: `{item['error']}`")
            out.append(f"  - odin: {item['odin']}")
            if not item.get("repaired", True):
                out.append("  - avoid it with any one of: " + ", ".join(f"`{a}`" for a in item["avoid"]))
    else:
        out.append("- none")
    out.append("")

    applying = [r for r in report["records"] if r["applies"]]
    out += [f"### Records ({len(applying)} of {len(report['records'])} apply here)", ""]
    for r in sorted(report["records"], key=lambda r: (not r["applies"], r["id"])):
        mark = "APPLIES" if r["applies"] else "skip   "
        out.append(f"- `{mark}` **{r['id']}** ({r['target']}): {r['reason']}")
        if r["applies"]:
            out.append(f"  - fixes: `{r['fixes']}`")
            out.append(f"  - source: {r['source']}")
    out.append("")

    out += ["### Imported before odin_compat", ""]
    pre = report["preloaded"]
    out.append("- " + (", ".join(pre) if pre else "none (good: import odin_compat first)"))
    if report["healed"]:
        out.append("- healed globals: " + ", ".join(f"{h['name']} in {h['where']}" for h in report["healed"]))
    out.append("")

    out += ["### Known-good pin sets", ""]
    for good in report["known_good"]:
        out += [f"{good['name']}, Python {good['python']}:", "", "```toml", "# pyproject.toml", "[project]",
                f'requires-python = "=={good["python"]}.*"', "dependencies = ["]  # fmt: skip
        out += [f'  "{pin}",' for pin in good["pins"]]
        out += ["]", "```", "", "```sh", "uv add " + " ".join(f'"{pin}"' for pin in good["pins"]), "```", ""]
    return "\n".join(out)


def main(as_json: bool = False, check: bool = False, entries: tuple[str, ...] = ()) -> int:
    """Print the report; with `check`, exit 1 when the environment will crash (see gate.py)."""
    report = collect()
    code = 0
    if check or entries:
        from odin_compat import gate

        report["check"] = gate.check(report, entries)
        code = 0 if report["check"]["ok"] else 1
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        text = render(report)
        if "check" in report:
            from odin_compat import gate

            text += "\n" + gate.render(report["check"])
        print(text)
    return code


def catalogue() -> str:
    """docs/catalogue.md: every record as a Markdown table, generated from the records."""
    from odin_compat._registry import REGISTRY

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Repair catalogue",
        "",
        "Generated from the records by `python -m odin_compat catalogue -o docs/catalogue.md`; do not edit by hand.",
        "Each record is proved against real releases in `docs/matrix.md`.",
        "",
        "| id | kind | where | fixes (error a user sees) | works | breaks | source | remove when |",
        "|---|---|---|---|---|---|---|---|",
    ]
    records = sorted(REGISTRY.all(), key=lambda r: (r.module.partition(".")[0], r.id))
    for r in records:
        lines.append(
            f"| `{r.id}` | {r.kind} | `{r.module}.{r.name}` | `{cell(r.fixes)}` | {cell(r.works)} | "
            f"{cell(r.breaks)} | {cell(r.upstream)} | {cell(r.remove_when)} |"
        )
    lines.append("")
    lines.append(f"{len(records)} records.")
    return "\n".join(lines) + "\n"
