"""The post-import hook engine (odin_compat._hook), on throwaway packages."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import pytest

from odin_compat import _hook


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh package `hookpkg_<n>` with modules m0..m15 on sys.path."""
    name = f"hookpkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    for i in range(16):
        (root / f"m{i}.py").write_text(f"VALUE = {i}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _hook.install()
    yield name
    for mod in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[mod]


def test_callback_runs_after_the_module_executed_and_loader_is_restored(pkg: str) -> None:
    seen = []
    _hook.watch(f"{pkg}.m1", lambda name: seen.append((name, sys.modules[name].VALUE)))
    module = importlib.import_module(f"{pkg}.m1")
    assert seen == [(f"{pkg}.m1", 1)]
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert type(module.__spec__.loader).__name__ == "SourceFileLoader"


def test_unwatched_modules_are_not_wrapped(pkg: str) -> None:
    spec = _hook._Finder().find_spec(f"{pkg}.m2")
    assert spec is None  # nobody watches it: the normal finders handle it


def test_package_watch_sees_every_submodule(pkg: str) -> None:
    seen = []
    _hook.watch(pkg, seen.append, package=True)
    importlib.import_module(f"{pkg}.m3")
    assert seen == [pkg, f"{pkg}.m3"]


def test_a_callback_may_import_other_watched_modules(pkg: str) -> None:
    seen = []
    _hook.watch(f"{pkg}.m4", lambda name: importlib.import_module(f"{pkg}.m5"))
    _hook.watch(f"{pkg}.m5", seen.append)
    importlib.import_module(f"{pkg}.m4")
    assert seen == [f"{pkg}.m5"]


def test_before_first_runs_once_before_the_package_executes(pkg: str) -> None:
    # What activation uses to import a target's records lazily: the callback may still watch
    # modules that the package imports while it executes.
    seen = []

    def prepare(top: str) -> None:
        seen.append(("first", top, top in sys.modules))
        _hook.watch(f"{pkg}.m6", seen.append)

    _hook.before_first(pkg, prepare)
    importlib.import_module(f"{pkg}.m6")
    importlib.import_module(f"{pkg}.m7")
    assert seen == [("first", pkg, False), f"{pkg}.m6"]


def test_sixteen_threads_importing_at_once(pkg: str) -> None:
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            counts[name] = counts.get(name, 0) + 1

    for i in range(16):
        _hook.watch(f"{pkg}.m{i}", count)
    barrier = threading.Barrier(16)
    errors = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            for j in range(16):  # every thread imports every module, in a different order
                importlib.import_module(f"{pkg}.m{(i + j) % 16}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert counts == {f"{pkg}.m{i}": 1 for i in range(16)}  # each hook ran exactly once


def test_install_is_idempotent() -> None:
    _hook.install()
    _hook.install()
    assert sum(isinstance(f, _hook._Finder) for f in sys.meta_path) == 1
