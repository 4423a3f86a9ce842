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


def test_checks_run_for_imports_in_watched_libraries_only(
    pkg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / f"{pkg}_other"  # a library nobody watches, beside the watched one
    other.mkdir()
    (other / "__init__.py").write_text("")
    (other / "a.py").write_text("")
    monkeypatch.setattr(_hook, "_on_find", [])
    seen: list[int] = []
    _hook.on_find(lambda: seen.append(1))
    _hook.watch(f"{pkg}.m6", lambda name: None)
    importlib.import_module(f"{pkg}_other.a")
    assert seen == []  # an unwatched library's imports are answered by one set look-up
    importlib.import_module(f"{pkg}.m7")  # m7 itself is not watched, its library is
    assert seen == [1, 1]  # the package, then m7
    for mod in [m for m in sys.modules if m.startswith(f"{pkg}_other")]:
        del sys.modules[mod]


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


# --- the spec keeps the real loader -------------------------------------------------------------


def test_find_spec_hands_out_the_real_loader(pkg: str) -> None:
    # importlib.util.find_spec on a watched module not imported yet: code that checks the loader's
    # class or calls its own methods must see the loader that the import system found.
    from importlib.machinery import SourceFileLoader
    from importlib.util import find_spec

    name = f"{pkg}.m8"
    seen = []
    _hook.watch(name, seen.append)
    spec = find_spec(name)
    assert type(spec.loader) is SourceFileLoader and isinstance(spec.loader, SourceFileLoader)
    assert spec.loader.get_filename(name).endswith("m8.py")
    assert spec.loader.get_source(name) == "VALUE = 8\n" and not spec.loader.is_package(name)
    assert spec.loader.get_resource_reader(name) is not None
    module = importlib.import_module(name)
    assert seen == [name] and module.VALUE == 8
    assert type(module.__spec__.loader) is SourceFileLoader and module.__loader__ is module.__spec__.loader
    assert "exec_module" not in vars(module.__loader__)  # nothing of odin's left on the loader
    assert module.__loader__ == SourceFileLoader(name, module.__file__)


def test_a_loader_shared_by_modules_answers_isinstance_as_itself(tmp_path: Path) -> None:
    # A zip archive's loader serves every module in it: wrapped, not chained, and still a zipimporter.
    import zipfile
    import zipimport
    from importlib.util import find_spec

    name = f"hookzip_{tmp_path.name.replace('-', '_')}"
    archive = tmp_path / "pkgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{name}/data.txt", "payload")
        zf.writestr(f"{name}/mod.py", "VALUE = 'zipped'\n")
    sys.path.insert(0, str(archive))
    try:
        seen = []
        _hook.watch(f"{name}.mod", seen.append)
        _hook.watch(name, seen.append)
        spec = find_spec(name)
        assert isinstance(spec.loader, zipimport.zipimporter) and spec.loader.is_package(name)
        assert spec.loader.get_data(f"{archive}/{name}/data.txt") == b"payload"
        import pkgutil

        assert pkgutil.get_data(name, "data.txt") == b"payload"
        assert importlib.import_module(f"{name}.mod").VALUE == "zipped"
        assert seen == [name, f"{name}.mod"]
        assert type(sys.modules[f"{name}.mod"].__loader__) is zipimport.zipimporter
    finally:
        sys.path.remove(str(archive))
        for mod in [m for m in sys.modules if m.startswith(name)]:
            del sys.modules[mod]


def test_a_reload_runs_the_callbacks_again_on_the_new_contents(pkg: str) -> None:
    name = f"{pkg}.m9"
    seen = []
    _hook.watch(name, lambda n: seen.append(sys.modules[n].VALUE))
    module = importlib.import_module(name)
    (Path(module.__file__)).write_text("VALUE = 'reloaded'\n")
    importlib.invalidate_caches()
    importlib.reload(module)  # a new size: the stale .pyc is not used
    assert seen == [9, "reloaded"]
    assert "exec_module" not in vars(module.__loader__)


STACK_LOADERS = """
import json, importlib.util, importlib.resources, odin_compat
from importlib.machinery import SourceFileLoader
names = ["transformers", "transformers.trainer", "accelerate.utils", "trl", "peft", "huggingface_hub"]
specs = [importlib.util.find_spec(n) for n in names]  # watched, not imported yet
ok = [isinstance(s.loader, SourceFileLoader) and s.loader.get_filename(s.name) == s.origin for s in specs]
import transformers.trainer
ok.append(importlib.resources.files("transformers").joinpath("__init__.py").is_file())
ok.append(type(transformers.trainer.__loader__) is SourceFileLoader)
print(json.dumps(ok))
"""


def test_find_spec_on_the_stack_modules_gives_their_source_loaders() -> None:
    from _releases import run_json

    assert run_json(STACK_LOADERS) == [True] * 8


# --- a reload keeps its repairs, and report() says so -----------------------------------------------

RELOAD = """
import importlib, json, sys, warnings
import odin_compat
from odin_compat import _records
import transformers.trainer, trl, peft, accelerate, trl.trainer.sft_trainer
warnings.simplefilter("ignore")

def status():
    return {o["id"]: o["status"] for o in odin_compat.report()["outcomes"]}

before = status()
modules = sorted({o["module"] for o in odin_compat.report()["outcomes"] if o["status"] == "applied"})
old = transformers.trainer.Trainer
importlib.reload(transformers.trainer)
from transformers.trainer import Trainer
for name in modules:  # every other module that odin repaired
    if name != "transformers.trainer":
        importlib.reload(sys.modules[name])
after = status()

class MyTrainer(Trainer):  # the old arity: wrapped by the subclass hook of the new Trainer
    def compute_loss(self, model, inputs, return_outputs=False):
        return 0

print(json.dumps({
    "new class": Trainer is not old,
    "tokenizer=": _records.adapted(Trainer.__init__, "transformers-trainer-tokenizer"),
    "override": getattr(MyTrainer.compute_loss, "__odin_record__", None),
    "changed": {k: [before[k], after.get(k)] for k in before if before[k] != after.get(k)},
    "not holding": sorted(r.id for r in _records.REGISTRY.loaded()
                          if after.get(r.id) == "applied" and not _records.holds(r)),
    "modules": len(modules),
}))
"""


def test_reloaded_modules_are_repaired_again_and_the_report_stays_true() -> None:
    from _releases import run_json

    found = run_json(RELOAD)
    assert found["modules"] > 10 and found["new class"]
    assert found["tokenizer="] and found["override"] == "transformers-override-compute-loss"
    assert found["changed"] == {} and found["not holding"] == []
