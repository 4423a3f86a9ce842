"""Post-import hooks: run callbacks when a watched module finishes executing.

A small meta-path finder in the spirit of wrapt's `importer.py`: it asks the
other finders for the spec, wraps the loader, and after the module's own code
has run, calls the callbacks registered for that module name.

Design points (each learnt from wrapt's bug history):
- `find_spec`/`exec_module` only (Python 3.12 dropped `find_module`);
- the original loader is put back on the module and its spec before the
  module's code runs, so `module.__loader__` looks untouched;
- callbacks run with none of odin's locks held (a callback may import);
- only modules that something watches are wrapped, so everything else imports
  exactly as before.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:  # importlib.abc and typing cost ~35 ms: keep them out of `import odin_compat`
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    Callback = Callable[[str], None]

_lock = allocate_lock()
_exact: dict[str, list[Callback]] = {}
_prefix: dict[str, list[Callback]] = {}  # top-level package -> callbacks for every module in it
_first: dict[str, Callback] = {}  # top-level package -> called once, as its first import begins
_on_find: list[Callable[[], None]] = []  # cheap checks run at the start of every import


def _callbacks(fullname: str) -> list[Callback]:
    # Runs for every import in the process: no lock (dict reads are atomic; watch() copies on
    # write), and nothing allocated for the modules nobody watches.
    exact = _exact.get(fullname)
    prefix = _prefix.get(fullname.partition(".")[0])
    if exact is None and prefix is None:
        return []
    return [*(exact or ()), *(prefix or ())]


def watch(name: str, callback: Callback, *, package: bool = False) -> None:
    """Call `callback(name)` when `name` (or, with package=True, any module of it) has loaded."""
    with _lock:
        table = _prefix if package else _exact
        table[name] = [*table.get(name, ()), callback]  # a new list: readers never see it change


def before_first(top: str, callback: Callback) -> None:
    """Call `callback(top)` once, when the first import of package `top` begins (before it runs).

    Its callbacks can then still watch modules that the package imports while it executes.
    """
    with _lock:
        _first[top] = callback


def on_find(check: Callable[[], None]) -> None:
    """Run `check()` at the start of every import that reaches the meta path (including the
    failed-attribute fallback of `from package import name`). It must be cheap."""
    with _lock:
        _on_find[:] = [*_on_find, check]


def warn(message: str, stacklevel: int = 2) -> None:
    """Containment's warning: under `-W error` (pytest's filterwarnings=error) it must not turn
    into the exception that containment exists to prevent, so it falls back to stderr."""
    import warnings

    try:
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
    except Exception:
        sys.stderr.write(f"RuntimeWarning: {message}\n")


def _run_first(top: str) -> None:
    with _lock:
        callback = _first.pop(top, None)
    if callback is None:
        return
    try:  # containment: the import itself must go on
        callback(top)
    except Exception as exc:
        warn(f"odin_compat: preparing repairs for {top} failed: {exc!r}")


class _Loader:
    """Wraps the real loader; delegates everything but `exec_module`."""

    def __init__(self, loader: object, callbacks: list[Callback]) -> None:
        self._loader = loader
        self._callbacks = callbacks

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[attr-defined]

    def exec_module(self, module: ModuleType) -> None:
        # Put the original loader back before the module's own code can look at it.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        for callback in self._callbacks:
            callback(module.__name__)


class _Finder:
    """A meta-path finder (the protocol, without importlib.abc's import cost)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        for check in _on_find:
            try:
                check()
            except Exception:  # containment: the import itself must go on
                pass
        if _first:  # lock-free reads; _run_first pops under the lock
            top = fullname.partition(".")[0]
            if top in _first:
                _run_first(top)
        callbacks = _callbacks(fullname)
        if not callbacks:
            return None
        for finder in list(sys.meta_path):
            if isinstance(finder, _Finder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # namespace package or legacy loader: leave it alone
        spec.loader = _Loader(spec.loader, callbacks)
        return spec


def install() -> bool:
    """Put the finder first on sys.meta_path once; True if it was added now."""
    with _lock:
        if any(isinstance(f, _Finder) for f in sys.meta_path):
            return False
        sys.meta_path.insert(0, _Finder())
        return True


def uninstall() -> None:
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
