"""`import odin_compat`: activation, the disable switch, idempotence, cost, and late imports."""

from __future__ import annotations

import warnings

from _releases import release, run_json

HEAVY = (
    "torch",
    "transformers",
    "accelerate",
    "trl",
    "peft",
    "unsloth",
    "datasets",
    "numpy",
    "typing",
    "dataclasses",
    "importlib.abc",
)


def test_import_alone_imports_nothing_heavy() -> None:
    code = f"import sys, json; before = set(sys.modules); import odin_compat; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before)))"
    assert run_json(code) == []


def test_record_modules_load_with_their_target() -> None:
    # Start-up cost: a target's records are imported only when that target starts to import.
    code = (
        "import sys, json, odin_compat; from odin_compat import _registry as _records;"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('odin_compat.repairs.') and '._vendor' not in m);"
        "first = loaded(); import huggingface_hub;"
        "print(json.dumps([first, loaded(), len(_records.REGISTRY.loaded()) < len(_records.REGISTRY.all())]))"
    )
    assert run_json(code) == [[], ["odin_compat.repairs.huggingface_hub"], True]


def test_active_with_finder_and_audit_hook() -> None:
    code = (
        "import sys, json, odin_compat; from odin_compat import _hook, _heal;"
        "print(json.dumps([odin_compat.active(), sum(isinstance(f, _hook._Finder) for f in sys.meta_path), _heal.audit_hook()]))"
    )
    assert run_json(code) == [True, 1, "compiled"]


def test_disable_switch_turns_everything_off() -> None:
    code = (
        "import sys, json, odin_compat; from odin_compat import _hook;"
        "print(json.dumps([odin_compat.active(), any(isinstance(f, _hook._Finder) for f in sys.meta_path), 'odin_compat._heal' in sys.modules]))"
    )
    for value in ("1", "true", "yes", "on", "TRUE"):
        assert run_json(code, env={"ODIN_COMPAT_DISABLE": value}) == [False, False, False]
    for value in ("0", "off", "false", "no", "", "OFF"):  # only the usual true values turn it off
        assert run_json(code, env={"ODIN_COMPAT_DISABLE": value})[0] is True, value


def test_activation_is_idempotent() -> None:
    code = (
        "import sys, json, importlib, odin_compat; from odin_compat import _hook, _records;"
        "n = len(_hook._exact); importlib.reload(odin_compat); import odin_compat;"
        "exec(open(odin_compat.__file__).read(), {'__name__': 'odin_compat_copy'});"  # a .pth-style second run
        "same = len(_hook._exact) == n; import huggingface_hub;"  # its records are watched now
        "print(json.dumps([sum(isinstance(f, _hook._Finder) for f in sys.meta_path), same,"
        " [len(v) for v in _hook._exact.values()], odin_compat.active()]))"
    )
    finders, same, per_module, active = run_json(code)
    assert finders == 1 and same and per_module and set(per_module) == {1} and active


def test_modules_imported_before_are_repaired_and_named() -> None:
    code = (
        "import json, warnings, accelerate.utils\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always'); import odin_compat\n"
        "print(json.dumps([str(x.message) for x in w] + [hasattr(accelerate.utils, 'FP8BackendType'), odin_compat.report()['preloaded']]))"
    )
    *messages, repaired, preloaded = run_json(code, release("accelerate==1.12.0"))
    assert repaired is True
    assert "accelerate.utils" in preloaded
    assert any("imported after accelerate" in m and "import odin_compat first" in m for m in messages)


def test_report_is_json_ready() -> None:
    import odin_compat

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = odin_compat.report()
    assert set(report) == {"active", "disabled", "preloaded", "outcomes", "healed"}
