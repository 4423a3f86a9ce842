"""The healer, on a throwaway origin package and rebuilders written the way unsloth writes them."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

import odin_compat
from odin_compat import _heal

ORIGIN = {
    "__init__.py": "",
    "kinds.py": "import enum\nclass Backend(str, enum.Enum):\n    NO = 'NO'\n    TE = 'TE'\n",
    "util.py": "def helper(x):\n    return x * 2\n",
    "core.py": textwrap.dedent(
        """
        from {pkg}.kinds import Backend
        from {pkg}.util import helper

        SCALE = 7

        class Engine:
            def run(self):
                def inner():
                    return helper(SCALE)  # read only inside a nested code object
                return Backend.TE, inner()
        """
    ),
}

# unsloth's pattern: getsource, dedent, edit, exec into this module's globals, assign back.
REBUILDER = textwrap.dedent(
    """
    import inspect
    from {pkg}.core import Engine
    {extra}
    src = inspect.getsource(Engine.run)
    spaces = src.split("\\n")[0].find("def")
    src = "\\n".join(line[spaces:] for line in src.split("\\n"))
    exec(src, globals())
    Engine.run = run
    """
)


@pytest.fixture
def origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = f"healorigin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / pkg).mkdir()
    for name, text in ORIGIN.items():
        (tmp_path / pkg / name).write_text(text.format(pkg=pkg))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_heal, "ORIGIN_PACKAGES", (*_heal.ORIGIN_PACKAGES, pkg))
    yield pkg
    for mod in [m for m in sys.modules if pkg in m]:
        del sys.modules[mod]


def write_rebuilder(tmp_path: Path, pkg: str, extra: str = "") -> str:
    name = f"{pkg}_rebuilder"
    (tmp_path / f"{name}.py").write_text(REBUILDER.format(pkg=pkg, extra=extra))
    return name


def test_rebuild_at_import_is_healed_at_exec_time(tmp_path: Path, origin: str) -> None:
    rebuilder = importlib.import_module(write_rebuilder(tmp_path, origin))
    core = sys.modules[f"{origin}.core"]
    assert core.Engine.run.__code__.co_filename == "<string>"
    assert core.Engine.run.__globals__ is vars(rebuilder)
    backend, value = core.Engine().run()
    assert backend is core.Backend.TE and value == 14
    assert rebuilder.Backend is core.Backend and rebuilder.helper is core.helper  # any class or function


def test_names_the_namespace_defines_are_never_overwritten(tmp_path: Path, origin: str) -> None:
    rebuilder = importlib.import_module(write_rebuilder(tmp_path, origin, extra="SCALE = 100"))
    assert rebuilder.SCALE == 100
    assert sys.modules[f"{origin}.core"].Engine().run()[1] == 200


def test_sweep_heals_a_rebuild_into_a_foreign_dict(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    namespace: dict = {}
    src = textwrap.dedent(importlib.import_module("inspect").getsource(core.Engine.run))
    # exec's own namespace is not the caller's, so only the sweep can find it
    exec(compile(src, "<rebuilt>", "exec"), namespace)
    core.Engine.run = namespace["run"]
    with pytest.raises(NameError, match="Backend"):
        core.Engine().run()
    filled = odin_compat.heal()
    assert set(filled) >= {"Backend", "helper", "SCALE"}
    assert core.Engine().run() == (core.Backend.TE, 14)
    assert odin_compat.heal() == []  # safe to run again: nothing left to do
    healed = {(h["name"], h["origin"]) for h in odin_compat.report()["healed"]}
    assert ("Backend", f"{origin}.core") in healed


def test_global_reads_see_nested_code_and_skip_attributes() -> None:
    def outer():
        def inner():
            return some_global.attribute_name  # noqa: F821

        return other_global, inner  # noqa: F821

    reads = _heal.global_reads(outer.__code__)
    assert {"some_global", "other_global"} <= reads
    assert "attribute_name" not in reads


def test_heal_function_only_fills_what_would_raise(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    namespace = {"Backend": "mine"}
    exec(
        compile(
            textwrap.dedent(importlib.import_module("inspect").getsource(core.Engine.run)), "<x>", "exec"
        ),
        namespace,
    )
    filled = _heal.heal_function(namespace["run"], core)
    assert sorted(filled) == ["SCALE", "helper"]
    assert namespace["Backend"] == "mine"


def test_sweep_heals_a_module_level_function_replaced_by_rebuilt_code(origin: str) -> None:
    util = importlib.import_module(f"{origin}.util")
    core = importlib.import_module(f"{origin}.core")
    namespace: dict = {}
    exec(compile("def helper(x):\n    return x * SCALE\n", "<rebuilt>", "exec"), namespace)
    core.helper = namespace["helper"]  # what `exec(f"trl.trainer.{mod}.{fn} = {fn}")` does
    assert "SCALE" in odin_compat.heal()
    assert core.helper(2) == 14 and util.helper(2) == 4


def test_rebuilder_imports_sweep_once_per_burst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(odin_compat, "heal", lambda: calls.append(1) or [])
    (tmp_path / "unsloth_zoo_fake").mkdir()
    (tmp_path / "unsloth_zoo_fake" / "__init__.py").write_text("from . import a, b\n")
    for sub in "ab":
        (tmp_path / "unsloth_zoo_fake" / f"{sub}.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from odin_compat import _hook

    _hook.watch("unsloth_zoo_fake", odin_compat._sweep_after, package=True)
    importlib.import_module("unsloth_zoo_fake")
    assert calls == [1]  # a and b finished while the package was still initializing


def test_a_replacement_after_a_clean_sweep_is_still_found(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    odin_compat.heal()  # snapshots the healthy class and module
    namespace: dict = {}
    src = textwrap.dedent(importlib.import_module("inspect").getsource(core.Engine.run))
    exec(compile(src, "<rebuilt>", "exec"), namespace)
    core.Engine.run = namespace["run"]  # same keys, one value replaced
    assert "Backend" in odin_compat.heal()
    assert core.Engine().run() == (core.Backend.TE, 14)
