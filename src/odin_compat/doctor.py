"""`odin-compat doctor`: an environment report, ready to paste into a bug report.

It reads installed versions from distribution metadata and decides every record from them,
without importing the libraries the records repair. Only the system section imports torch
(for CUDA and GPU facts).
"""

from __future__ import annotations

import json
import platform
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from odin_compat._records import Record

STACK = (
    "torch", "transformers", "accelerate", "trl", "peft", "huggingface_hub", "datasets", "tokenizers",
    "safetensors", "unsloth", "unsloth_zoo", "bitsandbytes", "xformers", "triton", "numpy", "packaging", "odin",
)  # fmt: skip

# The lead's records carry no `affects`; the breaking side for the report only.
_AFFECTS_FALLBACK = {
    "accelerate-fp8backendtype": "accelerate<0.34.0",
    "accelerate-utils-fp8backendtype": "accelerate",
}

# Known-bad combinations: (requirements that must all hold, what happens, does odin heal it).
KNOWN_BAD: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("unsloth>=2024.5,<=2025.6.2", "accelerate>=1.9.0"),
        "NameError: name 'FP8BackendType' is not defined (File \"<string>\", line 135, in prepare): unsloth "
        "rebuilds Accelerator.prepare from source into its own namespace",
        "healed: odin's healer fills the missing globals of the rebuilt function",
    ),
    (
        ("unsloth>=2024.5,<=2025.6.2", "accelerate>=1.8.0,<1.9.0"),
        "NameError: name 'is_torch_version' is not defined (File \"<string>\", line 121, in prepare) "
        "(unsloth #2775, accelerate #3641)",
        "healed: odin's healer fills the missing globals of the rebuilt function",
    ),
    (
        ("transformers>=4.52.0", "accelerate<1.3.0"),
        "TypeError: Accelerator.unwrap_model() got an unexpected keyword argument 'keep_torch_compile'",
        "healed: record accelerate-unwrap-model-keep-torch-compile",
    ),
    (
        ("peft>=0.15.0", "accelerate<0.32.0"),
        "ImportError: cannot import name 'clear_device_cache' from 'accelerate.utils.memory' on `import peft`",
        "healed: record accelerate-clear-device-cache",
    ),
    (
        ("transformers<4.41.0", "accelerate>=1.0.0"),
        "TypeError: Accelerator.__init__() got an unexpected keyword argument 'dispatch_batches' "
        "when Trainer builds its Accelerator",
        "healed: record accelerate-dataloader-args",
    ),
    (
        ("trl<0.12.0", "transformers>=5.0.0"),
        "TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer' (old trl passes tokenizer=)",
        "healed: record transformers-trainer-tokenizer",
    ),
)

# Known-good pin sets, paste-ready. The first is the user's report's Option 4.
KNOWN_GOOD: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "seed Option 4 (pre-FP8 stack: unsloth rebuilt prepare() before accelerate read FP8BackendType)",
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


def _version(dist: str) -> str | None:
    from odin_compat._records import dist_version

    return dist_version(dist)


def _matches(requirement: str, versions: dict[str, str | None]) -> tuple[bool, str]:
    """Does the installed version satisfy `requirement` ("pkg>=1,<2" or "pkg")? With a reason."""
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    installed = versions.get(req.name)
    if installed is None:
        installed = _version(req.name)
    if installed is None:
        return False, f"{req.name} not installed"
    ok = req.specifier.contains(installed, prereleases=True)
    spec = str(req.specifier) or "any version"
    return ok, f"{req.name} {installed} {'matches' if ok else 'is outside'} {spec}"


def _record_row(record: Record, versions: dict[str, str | None], outcomes: dict[str, dict]) -> dict:
    affects = record.affects or _AFFECTS_FALLBACK.get(record.id, "")
    if affects:
        applies, reason = _matches(affects, versions)
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
    from odin_compat import _records

    versions = {dist: _version(dist) for dist in STACK}
    state = odin_compat.report()
    outcomes = {o["id"]: o for o in state["outcomes"]}
    records = [_record_row(r, versions, outcomes) for r in _records.REGISTRY.all()]
    bad = []
    for requirements, error, remedy in KNOWN_BAD:
        results = [_matches(r, versions) for r in requirements]
        if all(ok for ok, _ in results):
            bad.append(
                {
                    "when": list(requirements),
                    "found": [why for _, why in results],
                    "error": error,
                    "odin": remedy,
                }
            )
    return {
        "odin_compat": odin_compat.__version__,
        "active": state["active"],
        "disabled": state["disabled"],
        "startup_installed": _startup_installed(),
        "system": _system(),
        "versions": versions,
        "records": records,
        "preloaded": state["preloaded"],
        "healed": state["healed"],
        "known_bad": bad,
        "known_good": [{"name": name, "python": py, "pins": list(pins)} for name, py, pins in KNOWN_GOOD],
    }


def _startup_installed() -> bool:
    from odin_compat import _startup

    return _startup.installed()


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
    out.append("- start-up activation (`odin-compat install`): "
               + ("installed: every interpreter of this environment activates odin" if report["startup_installed"]
                  else "not installed: only scripts that `import odin_compat` are repaired"))  # fmt: skip
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


def main(as_json: bool = False) -> int:
    report = collect()
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    return 0


def catalogue() -> str:
    """docs/catalogue.md: every record as a Markdown table, generated from the records."""
    from odin_compat import _records

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Repair catalogue",
        "",
        "Generated from the records by `python -m odin_compat catalogue -o docs/catalogue.md`; do not edit by hand.",
        "Each record is proved against real releases in `docs/matrix.md`.",
        "",
        "| id | kind | where | fixes (error a user sees) | works | breaks | source |",
        "|---|---|---|---|---|---|---|",
    ]
    records = sorted(_records.REGISTRY.all(), key=lambda r: (r.module.partition(".")[0], r.id))
    for r in records:
        lines.append(
            f"| `{r.id}` | {r.kind} | `{r.module}.{r.name}` | `{cell(r.fixes)}` | {cell(r.works)} | "
            f"{cell(r.breaks)} | {cell(r.upstream)} |"
        )
    lines.append("")
    lines.append(f"{len(records)} records.")
    return "\n".join(lines) + "\n"
