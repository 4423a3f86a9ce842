"""odin_compat: repairs for version skew in the Hugging Face training stack.

Put ``import odin_compat`` first in a script. It installs, once, a post-import
hook that applies small, faithful repairs as each target library loads, and an
audit hook that heals functions other libraries rebuild from source.
``ODIN_COMPAT_DISABLE=1`` turns everything off. Importing this package imports
no heavy library (no torch, transformers, accelerate, trl, peft or unsloth).
"""

from __future__ import annotations

import sys
from _thread import allocate_lock

from odin_compat._env import TRUE_VALUES  # noqa: F401  (TRUE_VALUES: older name)
from odin_compat._env import disabled as _disabled
from odin_compat._stack import REBUILDERS
from odin_compat._version import __version__

__all__ = ["active", "heal", "report", "__version__"]

_lock = allocate_lock()
_state = {"active": False, "preloaded": []}


def active() -> bool:
    """True when the hooks are installed in this process."""
    return _state["active"]


def heal() -> list[str]:
    """Sweep now: fill the missing globals of every rebuilt function. Returns the names filled."""
    if _disabled():
        return []
    from odin_compat import _heal

    return _heal.sweep()


def _heal_now(modules: list[str], sweep: bool = True) -> None:
    """Heal rebuilder modules that have imported (generated files included: before anything can
    patch their functions onto a class or call them), then sweep the origin libraries' classes."""
    from odin_compat import _heal

    try:
        for name in modules:
            module = sys.modules.get(name)
            if module is not None:
                _heal.heal_module(module)
        if sweep:
            heal()
    except Exception as exc:  # containment
        from odin_compat._hook import warn

        warn(f"odin_compat: healing failed: {exc!r}", stacklevel=3)


def _sweep_after(name: str) -> None:
    # One sweep of the origin classes per import burst: while a parent package is still
    # executing, its own completion will sweep.
    parts = name.split(".")
    in_burst = any(
        getattr(getattr(sys.modules.get(".".join(parts[:i])), "__spec__", None), "_initializing", False)
        for i in range(1, len(parts))
    )
    _heal_now([name], sweep=not in_burst)


def _watch_target(target: str) -> None:
    """Import one target library's records and watch the modules they repair."""
    from odin_compat import _hook, _registry, repairs

    repairs.load(target)
    for module_name in _registry.REGISTRY.modules_of(target):
        _hook.watch(module_name, _registry.apply_for)


def _explain_uncaught() -> None:
    """An uncaught error about something a newer release removed gets a note saying which release
    removed it and what replaced it (`odin_compat.explain`, imported only when such an error comes)."""
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
        try:
            from odin_compat import explain

            note = explain.add_note(exc)
        except Exception:  # an explanation must never hide the error
            note = None
        previous(kind, exc, tb)
        if note and not hasattr(exc, "add_note"):  # Python 3.10: no notes
            sys.stderr.write(note + "\n")

    excepthook.__odin_explain__ = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook


def _activate() -> None:
    if _disabled():
        return
    from odin_compat import _hook

    with _lock:
        # The finder on sys.meta_path is the process-wide marker: a second run of this code
        # (a .pth read twice, importlib.reload) finds it and does nothing.
        if not _hook.install():
            _state["active"] = True
            return
        _state["active"] = True
    from odin_compat import _heal, _registry, repairs

    # A target's records are imported when the target starts to import (or now, if it has).
    for target in repairs.TARGETS:
        if target in sys.modules:
            _watch_target(target)
        else:
            _hook.before_first(target, _watch_target)
    for package in REBUILDERS:
        _hook.watch(package, _sweep_after, package=True)
    _heal.install_audit_hook()
    _hook.on_find(_registry.repair_replaced)
    _explain_uncaught()

    # Modules loaded before us: repair them now, submodules before their parents (the order in
    # which they finished loading, so an alias on a package finds its submodule's backport), and
    # say so.
    preloaded = sorted(
        (m for m in {r.module for r in _registry.REGISTRY.loaded()} if m in sys.modules),
        key=lambda m: (-m.count("."), m),
    )
    for module_name in preloaded:
        _registry.apply_for(module_name)
    rebuilders = [m for m in sys.modules if m.partition(".")[0] in REBUILDERS]
    if rebuilders or preloaded:  # whatever rebuilt functions before we came: heal it now
        _heal_now(rebuilders)
    _state["preloaded"] = preloaded + sorted(rebuilders)
    if _state["preloaded"]:
        packages = sorted({m.partition(".")[0] for m in _state["preloaded"]})
        _hook.warn(
            "odin_compat was imported after "
            + ", ".join(packages)
            + "; they were repaired now, but import odin_compat first so repairs apply as they load.",
            stacklevel=3,
        )


def report() -> dict:
    """What holds in this process now: each record's outcome (applied, skipped, failed, or lost
    when an applied repair no longer holds), and the globals healed."""
    from odin_compat import _heal, _registry

    return {
        "active": active(),
        "disabled": _disabled(),
        "preloaded": list(_state["preloaded"]),
        "outcomes": [o.as_dict() for o in _registry.current_outcomes()],
        "healed": [{"where": w, "name": n, "origin": o} for w, n, o in _heal.healed()],
    }


_activate()
