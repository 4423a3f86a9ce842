"""`odin-compat install` / `uninstall`: start-up activation in a real, throwaway venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from odin_compat import startup as _startup

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import sys, json, subprocess;"
    "child = subprocess.run([sys.executable, '-c', \"import sys; print('odin_compat' in sys.modules)\"], capture_output=True, text=True).stdout.strip();"
    "print(json.dumps(['odin_compat' in sys.modules, child == 'True']))"
)


@pytest.fixture(scope="module")
def env_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare venv that sees odin's source through a path-only .pth (what an install gives)."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # odin's source plus where `packaging` (odin's one dependency) lives, as an install would give
    import packaging

    deps = Path(packaging.__file__).resolve().parent.parent
    # Named like pip's editable install, so that it sorts (and runs) before odin_compat.pth; with
    # a later name, activation would work here only through the venv's lib64 link, which makes
    # site.py read every .pth file twice.
    (Path(purelib) / "__editable__.odin_src.pth").write_text(f"{ROOT / 'src'}\n{deps}\n")
    return python


def run(python: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("ODIN_COMPAT_DISABLE", "PYTHONPATH")}
    return subprocess.run(
        [python, *args], capture_output=True, text=True, env={**full, **(env or {})}, timeout=120
    )


def test_install_activates_every_interpreter_and_uninstall_stops_it(env_python: Path) -> None:
    assert json.loads(run(env_python, "-c", PROBE).stdout) == [False, False]
    for _ in range(2):  # idempotent
        assert run(env_python, "-m", "odin_compat", "install").returncode == 0
    assert json.loads(run(env_python, "-c", PROBE).stdout) == [True, True]
    assert json.loads(
        run(env_python, "-c", "import json, odin_compat; print(json.dumps(odin_compat.active()))").stdout
    )
    # the disable switch, -S and isolated mode keep working
    assert json.loads(run(env_python, "-c", PROBE, env={"ODIN_COMPAT_DISABLE": "1"}).stdout)[0] is False
    assert run(env_python, "-S", "-c", "import sys; assert 'odin_compat' not in sys.modules").returncode == 0
    assert run(env_python, "-I", "-c", "import sys; assert 'odin_compat' in sys.modules").returncode == 0
    for _ in range(2):
        assert run(env_python, "-m", "odin_compat", "uninstall").returncode == 0
    assert json.loads(run(env_python, "-c", PROBE).stdout) == [False, False]


def test_a_broken_odin_never_breaks_start_up(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _startup.install(tmp_path)
    line = (tmp_path / "odin_compat.pth").read_text()
    namespace: dict = {}
    hidden = {k: sys.modules.pop(k) for k in list(sys.modules) if k.startswith("odin_compat")}
    sys.meta_path.insert(0, _Refuse())
    try:
        exec(line, namespace)  # what site.py does with an import line
    finally:
        sys.meta_path.pop(0)
        sys.modules.update(hidden)
    assert "odin_compat: start-up activation skipped" in capsys.readouterr().err
    assert (tmp_path / "odin_compat.start").read_text().strip() == "odin_compat.startup:activate"


class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "odin_compat":
            raise ImportError("odin_compat was uninstalled")
        return None


def test_doctor_shows_whether_start_up_activation_is_installed(env_python: Path) -> None:
    probe = "import json; from odin_compat import doctor; print(json.dumps(doctor.collect()['startup_installed']))"
    run(env_python, "-m", "odin_compat", "install")
    assert json.loads(run(env_python, "-c", probe).stdout) is True
    assert "installed: every interpreter" in run(env_python, "-m", "odin_compat", "doctor").stdout
    run(env_python, "-m", "odin_compat", "uninstall")
    assert json.loads(run(env_python, "-c", probe).stdout) is False


def test_torchrun_ranks_of_a_script_without_odin_are_active_after_install(
    env_python: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    import sysconfig

    script, out = tmp_path / "rank.py", tmp_path / "ranks"
    out.mkdir()
    script.write_text(  # one file per rank: the ranks' stdout lines interleave
        "import os, sys, pathlib\n"
        "pathlib.Path(sys.argv[1], 'rank' + os.environ['RANK']).write_text(str('odin_compat' in sys.modules))\n"
    )
    purelib = Path(
        run(env_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    # torch for the launcher and its ranks, through a path line (the .pth files there stay unread)
    torch_path = purelib / "zz_torch_for_test.pth"
    torch_path.write_text(sysconfig.get_paths()["purelib"] + "\n")
    try:
        assert run(env_python, "-m", "odin_compat", "install").returncode == 0
        proc = run(env_python, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(out))
    finally:
        run(env_python, "-m", "odin_compat", "uninstall")
        torch_path.unlink()
    ranks = {f.name: f.read_text() for f in out.iterdir()}
    assert ranks == {"rank0": "True", "rank1": "True"}, proc.stdout + proc.stderr[-2000:]
    assert "activation skipped" not in proc.stderr


def test_a_leftover_startup_file_stays_silent_once_odin_is_removed(tmp_path: Path) -> None:
    # `pip uninstall odin` without `odin-compat uninstall` leaves odin_compat.pth behind.
    root = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    _startup.install(purelib)
    proc = run(python, "-c", "import sys; print('odin_compat' in sys.modules)")
    assert proc.returncode == 0 and proc.stdout.strip() == "False"
    assert proc.stderr == ""
