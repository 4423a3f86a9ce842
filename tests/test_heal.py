"""The healer, on a throwaway origin package and rebuilders written the way unsloth writes them."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import odin_compat
from odin_compat import _heal

ORIGIN = {
    "__init__.py": "",
    "kinds.py": "import enum\nclass Backend(str, enum.Enum):\n    NO = 'NO'\n    TE = 'TE'\n",
    "util.py": "import math\n\nFACTOR = 2\n\ndef helper(x):\n    return int(math.floor(float(x) * FACTOR))\n",
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


LOADED_GENERATED = """
import odin_compat  # first, as in a script: `importlib` is imported later, and renames the import system
import importlib, importlib.abc, importlib.util, inspect, json, sys, textwrap
from odin_compat import _heal
_heal.ORIGIN_PACKAGES = (*_heal.ORIGIN_PACKAGES, PKG)
core = importlib.import_module(PKG + ".core")
source = textwrap.dedent(inspect.getsource(core.Engine.run)) + "RESULT = run(None)\\n"

class Generated(importlib.abc.InspectLoader):  # compiles generated source under a <...> name
    def get_source(self, fullname):
        return source

    def get_code(self, fullname):
        return compile(source, "<generated>", "exec")

    def is_package(self, fullname):
        return False

spec = importlib.util.spec_from_loader(PKG + "_generated", Generated())
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # the import system execs it; it calls run() at once
print(json.dumps([module.RESULT[0] is core.Backend.TE, module.RESULT[1]]))
"""


def test_a_generated_module_run_by_the_import_system_is_healed_at_exec(tmp_path: Path, origin: str) -> None:
    import json
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "ODIN_COMPAT_DISABLE"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(odin_compat.__file__).parents[1])])
    code = f"PKG = {origin!r}\n" + LOADED_GENERATED
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout, proc.stdout + proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [True, 14]


def test_names_the_namespace_defines_are_never_overwritten(tmp_path: Path, origin: str) -> None:
    rebuilder = importlib.import_module(write_rebuilder(tmp_path, origin, extra="SCALE = 100"))
    assert rebuilder.SCALE == 100
    assert sys.modules[f"{origin}.core"].Engine().run()[1] == 200


@contextlib.contextmanager
def profiler_running() -> Iterator[None]:
    """Another profiler (cProfile, a debugger): odin does not touch it, so only a sweep heals."""
    sys.setprofile(lambda *args: None)
    try:
        yield
    finally:
        sys.setprofile(None)


def _rebuild_run(core: object, namespace: dict) -> None:
    src = textwrap.dedent(importlib.import_module("inspect").getsource(core.Engine.run))
    exec(compile(src, "<rebuilt>", "exec"), namespace)


def test_exec_into_a_foreign_dict_heals_that_dict_not_the_caller(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    namespace: dict = {}
    _rebuild_run(core, namespace)  # exec(src, ns): ns is what the rebuilt function reads
    assert namespace["Backend"] is core.Backend and namespace["helper"] is core.helper
    assert "Backend" not in globals() and "SCALE" not in globals()  # the caller's module is untouched
    core.Engine.run = namespace["run"]
    assert core.Engine().run() == (core.Backend.TE, 14)


def test_sweep_heals_a_rebuild_made_while_a_profiler_runs(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    namespace: dict = {}
    with profiler_running():
        _rebuild_run(core, namespace)
    core.Engine.run = namespace["run"]
    with pytest.raises(NameError, match="Backend"):
        core.Engine().run()
    filled = odin_compat.heal()
    assert set(filled) >= {"Backend", "helper", "SCALE"}
    assert core.Engine().run() == (core.Backend.TE, 14)
    assert odin_compat.heal() == []  # safe to run again: nothing left to do
    healed = {(h["name"], h["origin"]) for h in odin_compat.report()["healed"]}
    assert ("Backend", f"{origin}.core") in healed


def test_a_users_own_function_with_an_origin_name_keeps_its_name_error(origin: str) -> None:
    importlib.import_module(f"{origin}.core")
    namespace: dict = {}
    # Same name and parameters as Engine.run, but not its code: not a rebuild.
    exec(compile("def run(self):\n    return Backend\n", "<user>", "exec"), namespace)
    assert "Backend" not in namespace and "Backend" not in globals()
    with pytest.raises(NameError, match="Backend"):
        namespace["run"](None)


def test_exec_heavy_code_keeps_the_caches_bounded() -> None:
    for i in range(_heal._CACHE_MAX + 500):
        namespace: dict = {}
        exec(f"def f{i}(x):\n    return missing_{i}(x)\n", namespace)
    assert len(_heal._reads_cache) <= _heal._CACHE_MAX
    assert len(_heal._derivations) <= _heal._CACHE_MAX


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
    with profiler_running():
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
    with profiler_running():
        exec(
            compile("def helper(x):\n    return int(math.floor(float(x) * FACTOR))\n", "<rebuilt>", "exec"),
            namespace,
        )
    core.helper = namespace["helper"]  # what `exec(f"trl.trainer.{mod}.{fn} = {fn}")` does
    assert {"FACTOR", "math"} <= set(odin_compat.heal())
    assert namespace["FACTOR"] is util.FACTOR  # the origin function's own value
    assert core.helper(2) == 4 and util.helper(2) == 4


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
    with profiler_running():
        _rebuild_run(core, namespace)
    core.Engine.run = namespace["run"]  # same keys, one value replaced
    assert "Backend" in odin_compat.heal()
    assert core.Engine().run() == (core.Backend.TE, 14)


GENERATED = textwrap.dedent(
    """
    # A generated file, as unsloth writes unsloth_compiled_cache/*.py: the origin's source,
    # edited, without the imports of the origin's module.
    def run(self):
        def inner():
            return helper(SCALE)
        return Backend.TE, inner()
    """
)


def test_a_generated_module_is_healed_before_its_function_is_patched_and_called(
    tmp_path: Path, origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = importlib.import_module(f"{origin}.core")
    package = tmp_path / "unsloth_compiled_cache"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / f"{origin}_gen.py").write_text(GENERATED)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        generated = importlib.import_module(f"unsloth_compiled_cache.{origin}_gen")
        core.Engine.run = generated.run  # patched and called with no import in between
        assert core.Engine().run() == (core.Backend.TE, 14)
        assert generated.Backend is core.Backend
    finally:
        for name in [m for m in sys.modules if m.startswith("unsloth_compiled_cache")]:
            del sys.modules[name]


USERS_OWN = """
import json, odin_compat
import torch, transformers.trainer, transformers.models.llama.modeling_llama
del torch
errors = []
ns = {}
# The user's own functions, named like transformers' methods but not rebuilt from them.
exec("def compute_loss(self, model, inputs, return_outputs=False):\\n    return logger\\n", globals())
exec("def forward(self, x):\\n    return torch.relu(x)\\n", ns)
for call in (lambda: compute_loss(None, None, None), lambda: ns["forward"](None, 1)):
    try:
        call()
    except NameError as exc:
        errors.append(str(exc))
print(json.dumps([errors, "logger" in globals(), "torch" in globals(), sorted(k for k in ns if k != "__builtins__")]))
"""


def test_users_own_exec_code_behaves_exactly_as_without_odin() -> None:
    from _releases import run_json

    errors, logger_leaked, torch_leaked, ns_keys = run_json(USERS_OWN)
    assert errors == ["name 'logger' is not defined", "name 'torch' is not defined"]
    assert not logger_leaked and not torch_leaked and ns_keys == ["forward"]


def test_the_rebuilt_function_works_inside_the_same_exec_and_no_profiler_is_left(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    src = textwrap.dedent(importlib.import_module("inspect").getsource(core.Engine.run))
    namespace: dict = {"Engine": core.Engine, "sys": sys}
    # A notebook cell: rebuild, then use it and look at the profiler, all in one exec.
    exec(compile(src + "RESULT = run(Engine())\nPROFILER = sys.getprofile()\n", "<cell>", "exec"), namespace)
    assert namespace["RESULT"] == (core.Backend.TE, 14)
    assert namespace["PROFILER"] is None and sys.getprofile() is None


def test_a_sandboxed_namespace_gets_nothing_from_outside(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    namespace: dict = {"__builtins__": {}}
    _rebuild_run(core, namespace)
    assert set(namespace) == {"__builtins__", "run"}


def test_heal_does_nothing_when_odin_is_disabled(origin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    core = importlib.import_module(f"{origin}.core")
    namespace: dict = {}
    with profiler_running():
        _rebuild_run(core, namespace)
    core.Engine.run = namespace["run"]
    monkeypatch.setenv("ODIN_COMPAT_DISABLE", "1")
    assert odin_compat.heal() == [] and "Backend" not in namespace


REBUILD_MODULE = """
import inspect, textwrap
from accelerate.accelerator import Accelerator
src = textwrap.dedent(inspect.getsource(Accelerator.prepare))
src = src.replace("device_placement=None):", "device_placement=None):\\n    pass  # edited", 1)
exec(src, globals())
Accelerator.prepare = prepare
"""

REBUILD_CHECK = """
import json, sys, odin_compat
sys.path.insert(0, {folder!r})
import my_rebuilder  # unsloth's pattern on Accelerator.prepare, in a module of its own
g = my_rebuilder.prepare.__globals__
print(json.dumps({{n: n in g for n in ("DistributedType", "FP8BackendType", "os", "torch")}}))
"""


def test_accelerator_prepare_is_healed_as_the_exec_returns(tmp_path: Path) -> None:
    # accelerate.accelerator was still executing when odin first indexed it: its classes must
    # still be indexed once it has finished, so the rebuild is healed at exec, before any call.
    from _releases import run_json

    (tmp_path / "my_rebuilder.py").write_text(REBUILD_MODULE)
    found = run_json(REBUILD_CHECK.format(folder=str(tmp_path)))
    assert found == {"DistributedType": True, "FP8BackendType": True, "os": True, "torch": True}


# A script that imports only the stack, and rebuilds a method itself.
REBUILD_IN_MAIN = f"""
import json, odin_compat
{REBUILD_MODULE}
print(json.dumps({{n: n in prepare.__globals__ for n in ("DistributedType", "FP8BackendType")}}))
"""


def test_a_rebuild_made_by_the_main_script_is_healed_at_exec() -> None:
    # Also at once in a process that has imported nothing but the stack: the exec trigger is armed
    # from `import odin_compat` on, not when some other package loads.
    from _releases import run_json

    assert run_json(REBUILD_IN_MAIN) == {"DistributedType": True, "FP8BackendType": True}


def test_containment_holds_under_warnings_as_errors() -> None:
    from _releases import run_python

    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import accelerate.utils\n"  # imported before odin: odin warns that it came late
        "import odin_compat\n"
        "from odin_compat import _hook\n"
        "_hook.warn('odin_compat: a repair failed')\n"
        "print(odin_compat.active())\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True" and "a repair failed" in proc.stderr


# --- rebuilt functions nested in the exec'd code, or compiled with a real file name ---------------


def _run_source(core: object) -> str:
    return textwrap.dedent(importlib.import_module("inspect").getsource(core.Engine.run))


def _healed_from(namespace: dict, core: object) -> bool:
    return namespace.get("Backend") is core.Backend and namespace.get("helper") is core.helper


def test_a_method_rebuilt_in_a_class_body_is_healed_at_exec(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    src = f"class FastEngine({origin}.core.Engine):\n" + textwrap.indent(_run_source(core), "    ")
    namespace: dict = {origin: sys.modules[origin]}
    exec(src, namespace)
    assert _healed_from(namespace, core) and namespace["SCALE"] == 7  # as the exec returns: no sweep
    assert namespace["FastEngine"]().run() == (core.Backend.TE, 14)
    assert "Backend" not in globals()


def test_a_class_body_with_its_own_locals_heals_the_globals_its_methods_read(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    src = "class FastEngine:\n" + textwrap.indent(_run_source(core), "    ")
    namespace: dict = {}
    local: dict = {}
    exec(src, namespace, local)
    assert _healed_from(namespace, core) and "Backend" not in local
    assert local["FastEngine"]().run() == (core.Backend.TE, 14)


def test_a_function_rebuilt_inside_a_factory_is_healed_at_exec(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    src = (
        "def make_run(tag):\n"
        + textwrap.indent(_run_source(core), "    ")
        + "    run.tag = tag\n    return run\n"
    )
    namespace: dict = {}
    exec(src, namespace)
    assert _healed_from(namespace, core)
    run = namespace["make_run"]("fast")
    assert run.__globals__ is namespace and run(core.Engine()) == (core.Backend.TE, 14)


def test_code_compiled_with_a_real_file_name_is_healed_at_exec(tmp_path: Path, origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    path = tmp_path / "generated_engine.py"
    path.write_text(_run_source(core))
    namespace: dict = {"__name__": "generated_engine", "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    assert _healed_from(namespace, core)
    assert namespace["run"](core.Engine()) == (core.Backend.TE, 14)


def test_nested_and_real_file_code_of_a_user_is_left_as_it_is(tmp_path: Path, origin: str) -> None:
    importlib.import_module(f"{origin}.core")
    own = "def run(self):\n    return Backend\n"  # named like Engine.run, not rebuilt from it
    path = tmp_path / "users_module.py"
    path.write_text(own)
    for src, filename in (
        ("class Mine:\n" + textwrap.indent(own, "    "), "<user>"),
        ("def factory():\n" + textwrap.indent(own, "    ") + "    return run\n", "<user>"),
        (own, str(path)),
    ):
        namespace: dict = {}
        exec(compile(src, filename, "exec"), namespace)
        assert set(namespace) == {"__builtins__", src.split()[1].partition("(")[0].rstrip(":")}, src


# --- an origin module deleted from sys.modules and imported again ----------------------------------


def test_an_origin_module_imported_again_is_indexed_afresh(origin: str) -> None:
    import gc
    import weakref

    core = importlib.import_module(f"{origin}.core")
    assert odin_compat.heal() == []  # the index now holds core's functions
    old_run = weakref.ref(core.Engine.run)
    del sys.modules[f"{origin}.core"]
    core = importlib.import_module(f"{origin}.core")  # a new module object, same number of modules
    namespace: dict = {}
    _rebuild_run(core, namespace)
    assert _healed_from(namespace, core)  # proven against the new module's Engine.run, at exec
    del namespace
    gc.collect()
    assert old_run() is None  # the healer does not keep the old module's functions alive
    namespace = {}
    with profiler_running():
        _rebuild_run(core, namespace)
    core.Engine.run = namespace["run"]
    assert "Backend" in odin_compat.heal()  # the sweep looks at the new module too
    assert core.Engine().run() == (core.Backend.TE, 14)


def test_a_reloaded_origin_module_is_indexed_afresh(origin: str) -> None:
    core = importlib.import_module(f"{origin}.core")
    odin_compat.heal()
    before = core.Engine
    importlib.reload(core)  # the same module object, new classes and functions
    assert core.Engine is not before
    namespace: dict = {}
    _rebuild_run(core, namespace)
    assert _healed_from(namespace, core)
    mine = [fn for fn in _heal._index.get("run", ()) if fn.__globals__ is vars(core)]
    assert mine == [core.Engine.run]  # the old class's run is no longer indexed
