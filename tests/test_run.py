"""`odin-compat run -- CMD`: odin active in every Python process the command starts, with
nothing written into site-packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odin_compat import run

SRC = Path(__file__).resolve().parents[1] / "src"

# Never imports odin: reports itself and a child process.
SCRIPT = """
import json, subprocess, sys
child = subprocess.run([sys.executable, "-c", "import sys; print('odin_compat' in sys.modules)"],
                       capture_output=True, text=True).stdout.strip()
odin = sys.modules.get("odin_compat")
print(json.dumps({"self": bool(odin and odin.active()), "child": child == "True",
                  "chained": getattr(sys.modules.get("sitecustomize"), "CHAINED", False)}))
"""


def env(**extra: str) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ODIN_"))}
    full["PYTHONPATH"] = str(SRC)
    full.update(extra)
    return full


def odin_run(*cmd: str, environ: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "odin_compat", "run", "--", *cmd], env=environ or env(),
                          capture_output=True, text=True, timeout=300, cwd=cwd)  # fmt: skip


def test_a_script_that_never_imports_odin_and_its_child_are_active(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    plain = subprocess.run([sys.executable, str(script)], env=env(), capture_output=True, text=True)
    assert json.loads(plain.stdout) == {"self": False, "child": False, "chained": False}
    proc = odin_run(sys.executable, str(script))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"self": True, "child": True, "chained": False}


def test_an_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    script, own = tmp_path / "job.py", tmp_path / "own"
    script.write_text(SCRIPT)
    own.mkdir()
    (own / "sitecustomize.py").write_text("import sys\nCHAINED = 'odin_compat' in sys.modules\n")
    proc = odin_run(
        sys.executable, str(script), environ=env(PYTHONPATH=os.pathsep.join([str(own), str(SRC)]))
    )
    # the user's sitecustomize ran, after odin was activated
    assert json.loads(proc.stdout) == {"self": True, "child": True, "chained": True}, proc.stderr


def test_exit_code_arguments_and_disable_switch_pass_through(tmp_path: Path) -> None:
    proc = odin_run(sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(7)", "a b", "--x")
    assert proc.returncode == 7 and proc.stdout.strip() == "['a b', '--x']"
    code = "import sys; print('odin_compat' in sys.modules)"
    assert (
        odin_run(sys.executable, "-c", code, environ=env(ODIN_COMPAT_DISABLE="1")).stdout.strip() == "False"
    )
    assert odin_run("no-such-program-odin").returncode == 127
    assert (
        subprocess.run(
            [sys.executable, "-m", "odin_compat", "run"], env=env(), capture_output=True
        ).returncode
        == 2
    )


def test_a_python_without_odin_starts_as_usual(tmp_path: Path) -> None:
    # The bootstrap folder alone on the path (odin itself not importable): start-up must not break.
    environ = run.environ({"PATH": os.environ.get("PATH", "")})
    proc = subprocess.run([sys.executable, "-S", "-c", "import sitecustomize, sys; print('odin_compat' in sys.modules)"],
                          env=environ, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_nothing_is_written_into_site_packages() -> None:
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    before = {p.name for p in site.iterdir()}
    assert odin_run(sys.executable, "-c", "pass").returncode == 0
    assert {p.name for p in site.iterdir()} == before


def test_torchrun_ranks_are_active(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script, out = tmp_path / "rank.py", tmp_path / "ranks"
    out.mkdir()
    script.write_text(  # one file per rank: the ranks' stdout lines interleave
        "import os, sys, pathlib\n"
        "pathlib.Path(sys.argv[1], 'rank' + os.environ['RANK']).write_text(str('odin_compat' in sys.modules))\n"
    )
    proc = odin_run(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(out),
                    cwd=tmp_path)  # fmt: skip
    ranks = {f.name: f.read_text() for f in out.iterdir()}
    assert ranks == {"rank0": "True", "rank1": "True"}, proc.stdout + proc.stderr[-2000:]
