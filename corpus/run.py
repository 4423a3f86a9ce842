"""Run the corpus of old training scripts, unchanged, on the installed releases, with and without odin.

    python corpus/run.py fetch [--mirror OWNER/NAME=GITDIR ...]   place the scripts (sha256-checked)
    python corpus/run.py run [--only ID ...] [--timeout S]       run them; writes corpus/results.md

Each script runs twice in a fresh interpreter, on CPU, with a tiny local model and a few steps:
as it is (odin disabled), and with `import odin_compat` executed first (the script's only change).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = HERE / ".scripts"
WORK = HERE / ".work"
MANIFEST = HERE / "manifest.json"
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
VERSIONS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub")


def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def url(entry: dict, path: str | None = None) -> str:
    return f"https://github.com/{entry['repo']}/blob/{entry['tag']}/{path or entry['path']}"


def _raw(entry: dict, path: str, mirrors: dict[str, str]) -> bytes:
    git = mirrors.get(entry["repo"])
    if git:
        return subprocess.run(["git", "--git-dir", git, "show", f"{entry['tag']}:{path}"],
                              check=True, capture_output=True).stdout  # fmt: skip
    raw = f"https://raw.githubusercontent.com/{entry['repo']}/{entry['tag']}/{path}"
    with urllib.request.urlopen(raw, timeout=60) as response:  # noqa: S310 (fixed https host)
        return response.read()


def fetch(mirrors: dict[str, str]) -> None:
    """Place every script (and its sibling files) under corpus/.scripts/<id>/, checking sha256."""
    data = manifest()
    changed = False
    for entry in data["scripts"]:
        folder = SCRIPTS / entry["id"]
        folder.mkdir(parents=True, exist_ok=True)
        digests = entry.setdefault("sha256", {})
        for path in [entry["path"], *entry.get("extra", [])]:
            body = _raw(entry, path, mirrors)
            digest = hashlib.sha256(body).hexdigest()
            if digests.get(path) not in (None, digest):
                raise SystemExit(f"{entry['id']}: {path} does not match its recorded sha256")
            changed |= path not in digests
            digests[path] = digest
            (folder / Path(path).name).write_bytes(body)
        print(f"{entry['id']}: {url(entry)}")
    if changed:  # first fetch pins the digests
        MANIFEST.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _versions(python: str) -> dict[str, str]:
    code = ("import json, importlib.metadata as m\nout = {}\n"
            f"for d in {VERSIONS!r}:\n    try: out[d] = m.version(d)\n    except Exception: out[d] = None\nprint(json.dumps(out))")  # fmt: skip
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


LAUNCH = """
import sys, runpy
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, __import__("os").path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


def _last_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if not line.startswith((" ", "\t")) and ("Error" in line or "Exception" in line or ":" in line):
            return line.strip()[:300]
    return (lines[-1] if lines else "").strip()[:300]


def run_one(entry: dict, common: list[str], python: str, *, odin: bool, timeout: float) -> dict:
    from fixtures import build

    fixtures = build(WORK)
    script = SCRIPTS / entry["id"] / Path(entry["path"]).name
    with tempfile.TemporaryDirectory() as tmp:
        fill = {"{model}": str(fixtures / "tiny-llama"), "{out}": str(Path(tmp) / "out")}
        args = [fill.get(a, a) for a in [*entry["args"], *(common if entry.get("common", True) else [])]]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ODIN_", "PYTHONPATH"))}
        env.update(HF_HOME=str(Path(tmp) / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="",
                   WANDB_DISABLED="true", PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")  # fmt: skip
        code = ("import odin_compat\n" if odin else "") + LAUNCH
        if not odin:
            env["ODIN_COMPAT_DISABLE"] = "1"  # a start-up hook, if installed, must not help
        start = time.monotonic()
        try:
            proc = subprocess.run([python, "-c", code, str(script), *args], cwd=fixtures, env=env,
                                  capture_output=True, text=True, timeout=timeout)  # fmt: skip
            rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, stdout, stderr = -1, "", f"timeout after {timeout:.0f} s\n{exc.stderr or ''}"
        seconds = time.monotonic() - start
        # completed: exit status 0 and the end-of-training evidence (the Trainer's summary, or a saved file)
        done_file = entry.get("done_file")
        trained = (
            (Path(fill["{out}"]) / done_file).exists() if done_file else "train_runtime" in stdout + stderr
        )
    log = WORK / "logs" / f"{entry['id']}.{'odin' if odin else 'plain'}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    stderr = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
    log.write_text(f"{stdout}\n--- stderr ---\n{stderr}", encoding="utf-8")
    ok = rc == 0 and trained
    error = "" if ok else _last_error(stderr) if rc != 0 else "exited 0 without finishing training"
    return {"ok": ok, "rc": rc, "seconds": round(seconds, 1), "error": error}


def run(only: list[str], python: str, timeout: float) -> None:
    data = manifest()
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"results": {}}
    results = previous.get("results", {})
    for entry in data["scripts"]:
        if only and entry["id"] not in only:
            continue
        row = {mode: run_one(entry, data["common"], python, odin=mode == "odin", timeout=timeout)
               for mode in ("plain", "odin")}  # fmt: skip
        results[entry["id"]] = row
        print(f"{entry['id']}: plain {'ok' if row['plain']['ok'] else 'FAIL'}, odin {'ok' if row['odin']['ok'] else 'FAIL'}"
              f" {row['odin']['error']}", flush=True)  # fmt: skip
        out = {"date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
               "python": platform.python_version(), "versions": _versions(python), "results": results}  # fmt: skip
        if "first_pass" in previous:
            out["first_pass"] = previous["first_pass"]
        RESULTS_JSON.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    render()


def render() -> None:
    """corpus/results.md from corpus/results.json and the manifest."""
    import re

    data, out = manifest(), json.loads(RESULTS_JSON.read_text(encoding="utf-8"))
    rows = [(e, out["results"][e["id"]]) for e in data["scripts"] if e["id"] in out["results"]]
    versions = ", ".join(f"{k} {v}" for k, v in out["versions"].items() if v)
    lines = [
        "# Corpus of old training scripts on today's releases",
        "",
        f"- date: {out['date']}; Python {out['python']}; {versions}",
        "- command: `python corpus/run.py fetch --mirror ...` then `python corpus/run.py run` (or `nox -s corpus`)",
        "- each script unchanged, on CPU, tiny local Llama (corpus/fixtures.py), 2 steps; "
        '"odin": `import odin_compat` executed first, the only change',
        "- completed: exit status 0 and training finished (the Trainer's `train_runtime` summary)",
        "",
    ]
    groups = (
        ("Scripts odin's records were written against", [r for r in rows if not r[0].get("added")]),
        ("Scripts added after the records were written (run once, not used to write them)",
         [r for r in rows if r[0].get("added")]),
    )  # fmt: skip
    total_plain = sum(r["plain"]["ok"] for _, r in rows)
    total_odin = sum(r["odin"]["ok"] for _, r in rows)
    lines += [
        f"**All: {total_plain}/{len(rows)} complete as they are, {total_odin}/{len(rows)} with odin.**",
        "",
    ]
    for title, group in groups:
        if not group:
            continue
        plain = sum(r["plain"]["ok"] for _, r in group)
        odin = sum(r["odin"]["ok"] for _, r in group)
        lines += [
            f"## {title}: {plain}/{len(group)} as they are, {odin}/{len(group)} with odin",
            "",
            "| script | release | license | as is | with odin | first error with odin (else as is) |",
            "|---|---|---|---|---|---|",
        ]
        for entry, r in group:
            err = r["odin"]["error"] or ("" if r["plain"]["ok"] else f"as is: {r['plain']['error']}")
            err = re.sub(r" \(/[^)]*\)", "", err).replace("|", "/")  # no local paths
            if entry.get("note"):
                err += f" (note: {entry['note']})"
            lines.append(
                f"| [{entry['path']}]({url(entry)}) | {entry['repo'].split('/')[1]} {entry['tag']} "
                f"| {entry['license']} | {'ok' if r['plain']['ok'] else 'fails'} "
                f"| {'**ok**' if r['odin']['ok'] else 'fails'} | {err} |"
            )
        lines.append("")
    first = out.get("first_pass")
    if first:
        ok = sum(v["odin"] for v in first["results"].values())
        lines += [
            f"## First run of the scripts added after the records ({first['date']}): "
            f"{ok}/{len(first['results'])} with odin",
            "",
            "What they hit on that first run, before any change made because of them:",
            "",
        ]
        lines += [
            f"- `{k}`: {re.sub(r' [(]/[^)]*[)]', '', v['error'])}"
            for k, v in first["results"].items()
            if not v["odin"]
        ]
        lines.append("")
    RESULTS_MD.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument(
        "--mirror", action="append", default=[], help="OWNER/NAME=GITDIR: read tags from a local git"
    )
    r = sub.add_parser("run")
    r.add_argument("--only", action="append", default=[])
    r.add_argument("--python", default=sys.executable, help="interpreter of the environment under test")
    r.add_argument("--timeout", type=float, default=600)
    sub.add_parser("render")
    args = parser.parse_args(argv)
    if args.cmd == "fetch":
        fetch(dict(m.split("=", 1) for m in args.mirror))
    elif args.cmd == "run":
        sys.path.insert(0, str(HERE))
        run(args.only, args.python, args.timeout)
    else:
        render()


if __name__ == "__main__":
    main()
