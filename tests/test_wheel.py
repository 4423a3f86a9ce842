"""The built wheel in a fresh venv holding a real locked stack: the FP8 report's pins.

The venv gets torch 2.13.0 (CPU) first, then `tests/locks/fp8-report-cpu.txt` with pip, as a
user's lock would be installed. odin's wheel is built from this tree and installed as users
install it (with dependency resolution, not --no-deps). Then: no pinned version moved, `import
odin_compat` repairs on that stack, and `odin-compat doctor` runs. Nothing here sees the source
tree: the subprocesses run in a temp folder without PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "tests" / "locks" / "fp8-report-cpu.txt"

# A script that never imports odin: which of two real crashes of this stack it hits.
PROBE = """
import json, sys
hit = {}
for name, code in (("fp8", "from accelerate.utils import FP8BackendType"),
                   ("int8", "from peft import prepare_model_for_int8_training")):
    try:
        exec(code, {})
        hit[name] = "ok"
    except ImportError as exc:
        hit[name] = str(exc)
odin = sys.modules.get("odin_compat")
hit["odin"] = getattr(odin, "__file__", None)
hit["applied"] = sorted(o["id"] for o in odin.report()["outcomes"] if o["status"] == "applied") if odin else []
print(json.dumps(hit))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_", "VIRTUAL_ENV"))}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", CUDA_VISIBLE_DEVICES="")  # fmt: skip
    return env


def _run(cmd: list, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _freeze(python: Path, cwd: Path) -> dict[str, str]:
    """{canonical name: version} of everything installed (`pip list`: a wheel installed from
    a file shows in `pip freeze` as a URL, not a version)."""
    from packaging.utils import canonicalize_name

    out = _run([python, "-m", "pip", "list", "--format=json"], cwd).stdout
    return {canonicalize_name(d["name"]): d["version"] for d in json.loads(out)}


class Stack:
    def __init__(self, root: Path) -> None:
        self.root, self.python = root, root / "venv" / "bin" / "python"
        self.bin = self.python.parent
        self.work = root / "work"
        self.before: dict[str, str] = {}
        self.after: dict[str, str] = {}
        self.wheel: Path | None = None
        self.seconds: dict[str, float] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    try:
        torch = metadata.version("torch")  # the same build as the test venv (CPU)
    except metadata.PackageNotFoundError:
        pytest.skip("needs torch in the test venv (the CPU build to install into the locked venv)")
    s = Stack(tmp_path_factory.mktemp("locked"))
    s.work.mkdir()
    t0 = time.monotonic()
    venv.EnvBuilder(with_pip=True).create(s.root / "venv")
    for args in ([f"torch=={torch}"], ["-r", LOCK]):  # as the matrix does, skip when the index cannot serve
        proc = subprocess.run([str(s.python), "-m", "pip", "install", "-q", *map(str, args)], cwd=s.work,
                              env=_env(), capture_output=True, text=True, timeout=900)  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(f"cannot install the locked stack ({args}): {proc.stderr[-500:]}")
    s.seconds["locked venv"] = time.monotonic() - t0
    t0 = time.monotonic()
    dist = s.root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT], s.work)
    (s.wheel,) = dist.glob("odin-*.whl")
    s.seconds["build"] = time.monotonic() - t0
    s.before = _freeze(s.python, s.work)
    _run([s.python, "-m", "pip", "install", "-q", s.wheel], s.work)  # as a user would: with deps
    s.after = _freeze(s.python, s.work)
    (s.work / "probe.py").write_text(PROBE)
    return s


def test_the_lock_is_installed_as_pinned(stack: Stack) -> None:
    from packaging.utils import canonicalize_name

    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    for name, version in (line.split("==", 1) for line in lines):
        name = canonicalize_name(name)
        assert stack.before.get(name, "").split("+")[0] == version, (name, stack.before.get(name))


def test_installing_the_wheel_moves_no_pin(stack: Stack) -> None:
    added = {k: v for k, v in stack.after.items() if k not in stack.before}
    moved = {k: (v, stack.after.get(k)) for k, v in stack.before.items() if stack.after.get(k) != v}
    from odin_compat import __version__

    assert added == {"odin": __version__} and moved == {}, (added, moved)
    # A platform wheel: it carries the healer's exec hook compiled for this interpreter.
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert stack.wheel is not None and stack.wheel.name.startswith(f"odin-{__version__}-{tag}-{tag}-")


def test_import_odin_compat_repairs_the_locked_stack(stack: Stack) -> None:
    plain = json.loads(_run([stack.python, "probe.py"], stack.work).stdout)
    assert "cannot import name 'FP8BackendType'" in plain["fp8"], plain
    assert "cannot import name 'prepare_model_for_int8_training'" in plain["int8"], plain
    assert plain["odin"] is None

    code = "import odin_compat\nexec(open('probe.py').read())"
    repaired = json.loads(_run([stack.python, "-c", code], stack.work).stdout)
    assert repaired["fp8"] == "ok" and repaired["int8"] == "ok", repaired
    assert Path(repaired["odin"]).is_relative_to(stack.root / "venv"), repaired["odin"]  # the wheel, not src/
    assert {"accelerate-utils-fp8backendtype", "peft-prepare-model-for-int8-training"} <= set(
        repaired["applied"]
    )


def test_odin_compat_run_repairs_a_script_that_never_imports_odin(stack: Stack) -> None:
    repaired = json.loads(
        _run([stack.bin / "odin-compat", "run", "--", stack.python, "probe.py"], stack.work).stdout
    )
    assert repaired["fp8"] == "ok" and repaired["int8"] == "ok", repaired


def test_doctor_runs_on_the_locked_stack(stack: Stack) -> None:
    report = json.loads(_run([stack.bin / "odin-compat", "doctor", "--json"], stack.work).stdout)
    assert report["odin_compat"] == stack.after["odin"]
    assert report["exec_hook"] == "compiled"
    assert {d: report["versions"][d] for d in ("transformers", "accelerate", "trl", "peft")} == {
        "transformers": "4.47.1", "accelerate": "1.12.0", "trl": "0.17.0", "peft": "0.15.2"}  # fmt: skip
    applies = {r["id"] for r in report["records"] if r["applies"]}
    assert {"accelerate-utils-fp8backendtype", "peft-prepare-model-for-int8-training"} <= applies
    assert (
        "### Known-bad combinations found" in _run([stack.bin / "odin-compat", "doctor"], stack.work).stdout
    )
    # no unsloth in this lock, so no crash that needs odin active: the gate passes
    _run([stack.bin / "odin-compat", "doctor", "--check"], stack.work)
    lock = json.loads(
        _run([stack.bin / "odin-compat", "doctor", "--lock", LOCK, "--json"], stack.work).stdout
    )
    assert lock["stack"]["transformers"] == "4.47.1" and lock["crashes"] == []
    print(f"locked stack timings: {stack.seconds}")
