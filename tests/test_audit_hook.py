"""The healer's exec hook in C (`odin_compat._audit`), and the same hook in Python where it was not built."""

from __future__ import annotations

import importlib

import pytest

from _releases import run_json
from test_heal import REBUILD_IN_MAIN, USERS_OWN

# Blocking the compiled module makes odin fall back, as on an install where it could not be built.
FALLBACK = "import sys; sys.modules['odin_compat._audit'] = None\n"
HOOKS = {"compiled": "", "python": FALLBACK}


def test_the_compiled_hook_is_built_by_the_install() -> None:
    # setup.py builds it as an optional extension; CI's install must have a compiler and build it.
    assert callable(importlib.import_module("odin_compat._audit").install)


@pytest.mark.parametrize("kind", HOOKS)
def test_either_hook_heals_a_rebuild_at_exec(kind: str) -> None:
    code = (
        HOOKS[kind]
        + REBUILD_IN_MAIN
        + "\nfrom odin_compat import _heal; print(json.dumps(_heal.audit_hook()))"
    )
    assert run_json(code) == kind
    assert run_json(HOOKS[kind] + REBUILD_IN_MAIN) == {"DistributedType": True, "FP8BackendType": True}


@pytest.mark.parametrize("kind", HOOKS)
def test_either_hook_leaves_a_users_own_exec_code_as_it_is(kind: str) -> None:
    errors, logger_leaked, torch_leaked, ns_keys = run_json(HOOKS[kind] + USERS_OWN)
    assert errors == ["name 'logger' is not defined", "name 'torch' is not defined"]
    assert not logger_leaked and not torch_leaked and ns_keys == ["forward"]


PROFILED = """
import json, sys, odin_compat
from odin_compat import _heal
seen = []
sys.setprofile(lambda frame, event, arg: seen.append(frame.f_code.co_name))
exec("def forward(x):\\n    return x\\n", {})
sys.setprofile(None)
print(json.dumps([_heal.audit_hook(), "_audit" in seen, "<module>" in seen]))
"""


@pytest.mark.parametrize("kind", HOOKS)
def test_a_profiler_does_not_see_either_hook(kind: str) -> None:
    # CPython runs a Python audit hook with tracing off; the C hook calls the healer the same way.
    assert run_json(HOOKS[kind] + PROFILED) == [kind, False, True]


DIRECT = """
import json, sys
from odin_compat._audit import install
calls, errors = [], []
class Refused(Exception):
    pass
def on_exec(event, args):
    calls.append([event, args[0].co_filename])
    if args[0].co_filename == "<refused>":
        raise Refused
try:
    install(on_exec)
except TypeError as exc:
    errors.append("TypeError")
skipped = {"skipped_caller": True, "looked_at": False}
install(on_exec, vars(sys.modules["_frozen_importlib"]), skipped)
open(sys.executable, "rb").close()  # an "open" event
compile("1", "<compiled>", "eval")  # a "compile" event
import csv  # "import" and "open" events, and the import system's exec of csv.py
exec(compile("x = 1", "<ok>", "exec"), {})
inner = "exec(compile('y = 1', '<{}>', 'exec'), {{}})"
for caller in ("skipped_caller", "looked_at", "new_caller"):
    exec(compile(inner.format(caller), "<outer>", "exec"), {"__name__": caller})
# Code run the way the import system runs a module: a frozen module's, then generated code.
as_import_system = eval(compile("lambda code: exec(code, {})", "<eval>", "eval"), vars(sys.modules["_frozen_importlib"]))
as_import_system(compile("z = 1", "<frozen made_up>", "exec"))
as_import_system(compile("z = 1", "<generated>", "exec"))
ns = {}
try:
    exec(compile("ran = True", "<refused>", "exec"), ns)
except Refused:
    errors.append("Refused")
try:
    install(on_exec, None, {})
except RuntimeError:
    errors.append("RuntimeError")
print(json.dumps([calls, "ran" in ns, errors]))
"""


def test_the_c_hook_calls_back_for_the_exec_events_the_python_hook_would_not_answer_at_once() -> None:
    calls, ran, errors = run_json(DIRECT, env={"ODIN_COMPAT_DISABLE": "1"})
    assert {event for event, _ in calls} == {"exec"}
    # Not called: other events, the import system's exec of a module (from a file or frozen), a caller
    # ruled out before.
    assert [filename for _, filename in calls] == [
        "<ok>",
        "<outer>",
        "<outer>",
        "<looked_at>",  # cached as "look at the code"
        "<outer>",
        "<new_caller>",  # not in the cache yet: the Python hook decides (and fills the cache)
        "<eval>",
        "<generated>",  # the import system's "<frozen ...>" module was answered in C
        "<refused>",
    ]
    assert ran is False  # the exec was refused before its code ran, as with a Python hook
    assert errors == ["TypeError", "Refused", "RuntimeError"]
